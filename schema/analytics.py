"""Analytics: chat events tagged with their source, and aggregated buckets."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import Enum
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from schema.common import Node, Source
from schema.conversation import Conversation
from schema.document import Document
from schema.message import Message
from schema.profile import Profile


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
    conversation: Conversation | None
    message: Message | None
    document: Document | None
    user: Profile | None


@strawberry.type
class ChatEventBucket:
    source: Source | None
    day: dt.date | None
    model_name: str | None
    events: int
    tokens_total: int
    cost_total: Decimal
