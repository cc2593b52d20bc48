"""Messages of both stores behind one ``Message`` interface."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from schema.common import Info, Node, Source, later
from schema.document import Document, load_document, load_documents
from schema.geo import City, Zone
from schema.ids import encode_cursor, to_global_id
from schema.profile import Profile, load_profile


@strawberry.enum
class MessageRole(Enum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


@strawberry.interface
class Message(Node):
    database_id: UUID
    source: Source
    role: MessageRole
    text: str
    conversation_turn: int | None
    created_at: datetime | None
    metadata: JSON | None
    user_id: strawberry.Private[UUID]
    reply_to_id: strawberry.Private[UUID | None]

    @strawberry.field(description="The profile of a USER message's user; null otherwise.")  # type: ignore[untyped-decorator]
    def author(self, info: Info) -> Profile | None:
        if self.role is not MessageRole.USER:
            return None
        return later(load_profile(info, self.user_id))

    @strawberry.field
    def reply_to(self, info: Info) -> Message | None:
        if self.reply_to_id is None:
            return None
        return later(_load_message(info, self.source.value, self.reply_to_id))

    @strawberry.field
    def documents(self, info: Info) -> list[Document]:
        """Documents the message refers to (v1 ``document_id``, v2 ``referenced_documents``)."""
        raise NotImplementedError  # each store's type resolves its own


@strawberry.type
class V1Message(Message):
    document_id: strawberry.Private[UUID | None]

    @strawberry.field
    def documents(self, info: Info) -> list[Document]:
        if self.document_id is None:
            return []
        return later(_one_document(info, self.document_id))


@strawberry.type
class V2Message(Message):
    message_type: str | None
    intent_detected: str | None
    confidence_score: float | None
    ai_model_used: str | None
    search_context: JSON | None
    document_ids: strawberry.Private[list[UUID] | None]
    zone_ids: strawberry.Private[list[UUID] | None]
    city_ids: strawberry.Private[list[UUID] | None]

    @strawberry.field
    def documents(self, info: Info) -> list[Document]:
        if not self.document_ids:
            return []
        return later(load_documents(info, self.document_ids))

    @strawberry.field
    def referenced_zones(self, info: Info) -> list[Zone]:
        if not self.zone_ids:
            return []
        return later(_load_zones(info, self.zone_ids))

    @strawberry.field
    def referenced_cities(self, info: Info) -> list[City]:
        if not self.city_ids:
            return []
        return later(_load_cities(info, self.city_ids))


async def _load_message(info: Info, source: str, message_id: UUID) -> Message | None:
    row = await info.context.loaders.message.load((source, message_id))
    return message_from_row(source, row) if row else None


async def _one_document(info: Info, document_id: UUID) -> list[Document]:
    document = await load_document(info, document_id)
    return [document] if document else []


async def _load_zones(info: Info, ids: list[UUID]) -> list[Zone]:
    rows = await info.context.loaders.zone.load_many(ids)
    return [Zone.from_row(r) for r in rows if r]


async def _load_cities(info: Info, ids: list[UUID]) -> list[City]:
    rows = await info.context.loaders.city.load_many(ids)
    return [City.from_row(r) for r in rows if r]


def _common(source: str, row: Any) -> dict[str, Any]:
    type_name = "V1Message" if source == "v1" else "V2Message"
    return {
        "id": strawberry.ID(to_global_id(type_name, row["id"])),
        "database_id": row["id"],
        "source": Source(source),
        "role": MessageRole(row["role"]),
        "text": row["message"],
        "conversation_turn": row["conversation_turn"],
        "created_at": row["created_at"],
        "metadata": row["metadata"],
        "user_id": row["user_id"],
        "reply_to_id": row["reply_to_message_id"],
    }


def message_from_row(source: str, row: Any) -> Message:
    """The one place a message row becomes a graph object, tagged with its store."""
    if source == "v1":
        return V1Message(**_common(source, row), document_id=row["document_id"])
    score = row["confidence_score"]
    return V2Message(
        **_common(source, row),
        message_type=row["message_type"],
        intent_detected=row["intent_detected"],
        confidence_score=float(score) if score is not None else None,
        ai_model_used=row["ai_model_used"],
        search_context=row["search_context"],
        document_ids=row["referenced_documents"],
        zone_ids=row["referenced_zones"],
        city_ids=row["referenced_cities"],
    )


def message_cursor(row: Any) -> str:
    return encode_cursor("message", row["created_at"], row["id"])
