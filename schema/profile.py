"""Profiles (shared between v1 and v2)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import strawberry

from schema.common import Node
from schema.flags import FeatureValue


@strawberry.type
class Profile(Node):
    database_id: UUID
    email: str | None
    full_name: str | None
    is_admin: bool
    created_at: datetime | None
    features: list[FeatureValue] = strawberry.field(
        description="Every flag as decided for the viewer; empty on anyone else's profile."
    )
