"""v2 projects."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from gateway.store import Row
from gateway.store.shared import embedded
from schema.common import Connection, Info, Node, build_connection, later, page_size
from schema.conversation import V2Conversation, conversation_cursor, conversation_from_row
from schema.document import Document
from schema.geo import City, Zone, load_city, load_zone
from schema.ids import time_keyset, to_global_id
from schema.profile import Profile, load_profile


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
    user_id: strawberry.Private[UUID]
    main_city_id: strawberry.Private[UUID | None]
    main_zone_id: strawberry.Private[UUID | None]
    # Related rows the store embedded (``gateway.store.projects.by_ids``).
    main_city_row: strawberry.Private[Row | None] = None
    main_zone_row: strawberry.Private[Row | None] = None

    @classmethod
    def from_row(cls, row: Any) -> Project:
        return cls(
            id=strawberry.ID(to_global_id("Project", row["id"])),
            database_id=row["id"],
            name=row["name"],
            description=row["description"],
            project_type=row["project_type"],
            main_address=row["main_address"],
            geo_lon=row["geo_lon"],
            geo_lat=row["geo_lat"],
            color=row["color"],
            icon=row["icon"],
            starred=bool(row["starred"]),
            position=row["position"],
            status=ProjectStatus(row["status"] or "draft"),
            plu_alert_enabled=bool(row["plu_alert_enabled"]),
            plu_last_check_at=row["plu_last_check_at"],
            plu_check_frequency=row["plu_check_frequency"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            first_edited_at=row["first_edited_at"],
            metadata=row["metadata"],
            user_id=row["user_id"],
            main_city_id=row["main_city_id"],
            main_zone_id=row["main_zone_id"],
            main_city_row=embedded(row.get("main_city_row")),
            main_zone_row=embedded(row.get("main_zone_row")),
        )

    @strawberry.field
    async def owner(self, info: Info) -> Profile | None:
        return await load_profile(info, self.user_id)

    @strawberry.field
    def main_city(self, info: Info) -> City | None:
        if self.main_city_row is not None:
            return City.from_row(self.main_city_row)
        if self.main_city_id is None:
            return None
        return later(load_city(info, self.main_city_id))

    @strawberry.field
    def main_zone(self, info: Info) -> Zone | None:
        if self.main_zone_row is not None:
            return Zone.from_row(self.main_zone_row)
        if self.main_zone_id is None:
            return None
        return later(load_zone(info, self.main_zone_id))

    @strawberry.field(description="Documents of the project, pinned first.")  # type: ignore[untyped-decorator]
    async def documents(self, info: Info) -> list[Document]:
        rows = await info.context.loaders.documents_by_project.load(self.database_id)
        return [Document.from_row(r) for r in rows]

    @strawberry.field(description="Conversations of the project, latest activity first.")  # type: ignore[untyped-decorator]
    async def conversations(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[V2Conversation]:
        limit = page_size(first)
        keyset = time_keyset("conversation", after)
        loaders = info.context.loaders
        rows = await loaders.v2_conversations_by_project.load(
            (self.database_id, limit + 1, keyset)
        )

        async def count() -> int:
            return await loaders.v2_count_by_project.load(self.database_id)

        return build_connection(
            rows, limit, conversation_from_row, conversation_cursor, count  # type: ignore[arg-type]
        )
