"""Filter inputs of the root query fields."""

from __future__ import annotations

from datetime import datetime

import strawberry

from schema.common import Source
from schema.project import ProjectStatus


@strawberry.input
class ConversationFilter:
    source: Source | None = None
    owner_id: strawberry.ID | None = None
    project_id: strawberry.ID | None = None
    document_id: strawberry.ID | None = None
    is_active: bool | None = None
    last_message_after: datetime | None = strawberry.field(
        default=None, description="Strict lower bound on lastMessageAt."
    )
    last_message_before: datetime | None = strawberry.field(
        default=None, description="Strict upper bound on lastMessageAt."
    )
    include_migrated: bool | None = strawberry.field(
        default=False,
        description="Include v1 conversations whose migration completed (their v2 copy "
        "stands for them otherwise).",
    )


@strawberry.input
class ProjectFilter:
    status: ProjectStatus | None = None
    starred: bool | None = None


@strawberry.input
class DocumentFilter:
    city_id: strawberry.ID | None = None
    zone_id: strawberry.ID | None = None
