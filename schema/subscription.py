"""``Subscription`` (DESIGN §10): over graphql-transport-ws or graphql-sse on ``/graphql``.
Each event is read again as the subscriber, through the engine (``schema.engine.events``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import strawberry

from schema.conversation import Conversation
from schema.engine.events import subscribe
from schema.message import Message


@strawberry.type
class Subscription:
    @strawberry.subscription(  # type: ignore[untyped-decorator]
        description="Each message added to the conversation after the subscription starts, "
        "in order, whoever wrote it (v1 messages the v1 application writes arrive within "
        "GATEWAY_V1_POLL_S). NOT_FOUND when the viewer cannot see the conversation."
    )
    async def message_added(
        self, info: strawberry.Info, conversation_id: strawberry.ID
    ) -> AsyncIterator[Message]:
        return await subscribe(info)  # type: ignore[return-value]

    @strawberry.subscription(  # type: ignore[untyped-decorator]
        description="The viewer's conversations (every conversation for admins and the "
        "service role) whose lastMessageAt moved."
    )
    async def conversation_activity(self, info: strawberry.Info) -> AsyncIterator[Conversation]:
        return await subscribe(info)  # type: ignore[return-value]
