"""Messages of both stores behind one ``Message`` interface."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from schema.common import Node, Source
from schema.document import Document
from schema.geo import City, Zone
from schema.profile import Profile


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
    author: Profile | None = strawberry.field(
        description="The profile of a USER message's user; null otherwise."
    )
    reply_to: Message | None
    documents: list[Document]


@strawberry.type
class V1Message(Message):
    pass


@strawberry.type
class V2Message(Message):
    message_type: str | None
    intent_detected: str | None
    confidence_score: float | None
    ai_model_used: str | None
    search_context: JSON | None
    referenced_zones: list[Zone]
    referenced_cities: list[City]
