"""Analytics: chat events tagged with their source, and aggregated buckets."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from schema.common import Info, Node, Source
from schema.conversation import Conversation, conversation_from_row
from schema.document import Document, load_document
from schema.ids import to_global_id
from schema.message import Message, message_from_row
from schema.profile import Profile, load_profile


@strawberry.enum
class ChatEventGroupBy(Enum):
    SOURCE = "source"
    DAY = "day"
    MODEL = "model"


@strawberry.input
class ChatEventFilter:
    source: Source | None = None
    from_: dt.datetime | None = strawberry.field(
        default=None, name="from", description="Inclusive lower bound on createdAt."
    )
    to: dt.datetime | None = strawberry.field(
        default=None, description="Exclusive upper bound on createdAt."
    )
    user_id: strawberry.ID | None = None
    document_id: strawberry.ID | None = None
    model_name: str | None = None


@strawberry.type
class ChatEvent(Node):
    database_id: UUID
    source: Source | None
    model_name: str | None
    tokens_total: int | None
    cost_total: Decimal | None
    metadata: JSON | None
    created_at: dt.datetime | None
    conversation_id: strawberry.Private[UUID | None]
    message_id: strawberry.Private[UUID | None]
    document_id: strawberry.Private[UUID | None]
    user_id: strawberry.Private[UUID | None]

    @classmethod
    def from_row(cls, row: Any) -> ChatEvent:
        raw_source = (
            (row["metadata"] or {}).get("source") if isinstance(row["metadata"], dict) else None
        )
        return cls(
            id=strawberry.ID(to_global_id("ChatEvent", row["id"])),
            database_id=row["id"],
            source=Source(raw_source) if raw_source in ("v1", "v2") else None,
            model_name=row["model_name"],
            tokens_total=row["tokens_total"],
            cost_total=row["cost_total"],
            metadata=row["metadata"],
            created_at=row["created_at"],
            conversation_id=row["conversation_id"],
            message_id=row["message_id"],
            document_id=row["document_id"],
            user_id=row["user_id"],
        )

    @strawberry.field
    async def conversation(self, info: Info) -> Conversation | None:
        if self.conversation_id is None or self.source is None:
            return None
        loaders = info.context.loaders
        loader = loaders.v1_conversation if self.source is Source.V1 else loaders.v2_conversation
        row = await loader.load(self.conversation_id)
        return conversation_from_row(row) if row else None

    @strawberry.field
    async def message(self, info: Info) -> Message | None:
        if self.message_id is None or self.source is None:
            return None
        row = await info.context.loaders.message.load((self.source.value, self.message_id))
        return message_from_row(self.source.value, row) if row else None

    @strawberry.field
    async def document(self, info: Info) -> Document | None:
        return await load_document(info, self.document_id)

    @strawberry.field
    async def user(self, info: Info) -> Profile | None:
        return await load_profile(info, self.user_id)


@strawberry.type
class ChatEventBucket:
    source: Source | None
    day: dt.date | None
    model_name: str | None
    events: int
    tokens_total: int
    cost_total: Decimal

    @classmethod
    def from_row(cls, row: Any) -> ChatEventBucket:
        return cls(
            source=Source(row["source"]) if row["source"] in ("v1", "v2") else None,
            day=row["day"],
            model_name=row["model"],
            events=row["events"],
            tokens_total=int(row["tokens_total"]),
            cost_total=row["cost_total"],
        )
