"""``Query.node`` and ``Query.nodes``: any object by its global id, null when not visible."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from schema.analytics import ChatEvent
from schema.common import Info, Node
from schema.conversation import conversation_from_row
from schema.document import Document, Typology
from schema.geo import City, Zone, Zoning
from schema.ids import from_global_id
from schema.message import message_from_row
from schema.migration import Migration
from schema.profile import Profile
from schema.project import Project

PRIVATE = frozenset(
    {"V1Conversation", "V2Conversation", "V1Message", "V2Message", "Project", "Profile",
     "Migration", "ChatEvent"}
)


def _resolvers(info: Info) -> dict[str, Callable[[UUID], Awaitable[Node | None]]]:
    loaders = info.context.loaders

    def simple(
        loader: Any, make: Callable[[Any], Node]
    ) -> Callable[[UUID], Awaitable[Node | None]]:
        async def resolve(database_id: UUID) -> Node | None:
            row = await loader.load(database_id)
            return make(row) if row else None

        return resolve

    def message(source: str) -> Callable[[UUID], Awaitable[Node | None]]:
        async def resolve(database_id: UUID) -> Node | None:
            row = await loaders.message.load((source, database_id))
            return message_from_row(source, row) if row else None

        return resolve

    return {
        "V1Conversation": simple(loaders.v1_conversation, conversation_from_row),
        "V2Conversation": simple(loaders.v2_conversation, conversation_from_row),
        "V1Message": message("v1"),
        "V2Message": message("v2"),
        "Project": simple(loaders.project, Project.from_row),
        "City": simple(loaders.city, City.from_row),
        "Zoning": simple(loaders.zoning, Zoning.from_row),
        "Zone": simple(loaders.zone, Zone.from_row),
        "Typology": simple(loaders.typology, Typology.from_row),
        "Document": simple(loaders.document, Document.from_row),
        "Profile": simple(loaders.profile, Profile.from_row),
        "Migration": simple(loaders.migration, Migration.from_row),
        "ChatEvent": simple(loaders.chat_event, ChatEvent.from_row),
    }


async def node(info: Info, id: str) -> Node | None:
    return (await nodes(info, [id]))[0]


async def nodes(info: Info, ids: list[str]) -> list[Node | None]:
    """Objects in the order of ``ids``; malformed ids are ``BAD_USER_INPUT`` (checked before
    any SQL), private objects are null for anonymous viewers without a query."""
    decoded = [from_global_id(i) for i in ids]
    anonymous = info.context.is_anonymous
    resolvers = _resolvers(info)

    async def one(type_name: str, database_id: UUID) -> Node | None:
        if anonymous and type_name in PRIVATE:
            return None
        return await resolvers[type_name](database_id)

    return list(await asyncio.gather(*(one(t, i) for t, i in decoded)))
