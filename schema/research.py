"""Address research of both stores (``research_history``, ``v2_research_history``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import strawberry

from schema.common import Node, Source
from schema.document import Document
from schema.geo import City, Zone

if TYPE_CHECKING:
    from schema.conversation import V2Conversation
    from schema.project import Project


@strawberry.interface(description="An address the viewer researched, in either store.")
class ResearchEntry(Node):
    database_id: UUID
    source: Source
    address_input: str | None
    city: City | None
    zone: Zone | None
    created_at: datetime | None


@strawberry.type
class V1ResearchEntry(ResearchEntry):
    pass


@strawberry.type
class V2ResearchEntry(ResearchEntry):
    search_intent: str | None
    geocoded_address: str | None
    geo_lon: Decimal | None
    geo_lat: Decimal | None
    success: bool
    error_reason: str | None
    documents: list[Document] = strawberry.field(description="The documents it found.")
    conversation: Annotated[V2Conversation, strawberry.lazy("schema.conversation")] | None
    project: Annotated[Project, strawberry.lazy("schema.project")] | None


@strawberry.input
class ResearchFilter:
    source: Source | None = None


@strawberry.input
class RecordResearchInput:
    address_input: str
    search_intent: str | None = None
    geocoded_address: str | None = None
    city_id: strawberry.ID | None = None
    zone_id: strawberry.ID | None = None
    geo_lon: Decimal | None = None
    geo_lat: Decimal | None = None
    document_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="The documents the research found."
    )
    success: bool | None = True
    error_reason: str | None = None
    conversation_id: strawberry.ID | None = strawberry.field(
        default=None, description="A V2Conversation of the viewer."
    )
    project_id: strawberry.ID | None = None


@strawberry.type
class RecordResearchPayload:
    entry: ResearchEntry
