"""v2 projects."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from schema.common import Connection, Node, declared
from schema.conversation import V2Conversation
from schema.document import Document
from schema.geo import City, Zone
from schema.profile import Profile


@strawberry.enum
class ProjectStatus(Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    COMPLETED = "completed"
    ARCHIVED = "archived"


@strawberry.type
class Project(Node):
    database_id: UUID
    name: str | None
    description: str | None
    project_type: str | None
    main_address: str | None
    geo_lon: Decimal | None
    geo_lat: Decimal | None
    color: str | None
    icon: str | None
    starred: bool
    position: int | None
    status: ProjectStatus
    plu_alert_enabled: bool
    plu_last_check_at: datetime | None
    plu_check_frequency: str | None
    created_at: datetime | None
    updated_at: datetime | None
    first_edited_at: datetime | None
    metadata: JSON | None
    owner: Profile | None
    main_city: City | None
    main_zone: Zone | None
    documents: list[Document] = strawberry.field(
        description="Documents of the project, pinned first."
    )

    @strawberry.field(description="Conversations of the project, latest activity first.")  # type: ignore[untyped-decorator]
    def conversations(
        self, first: int | None = 20, after: str | None = None
    ) -> Connection[V2Conversation]:
        declared()
