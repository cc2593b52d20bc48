"""Profiles (shared between v1 and v2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import strawberry

from schema.common import Info, Node
from schema.ids import to_global_id


@strawberry.type
class Profile(Node):
    database_id: UUID
    email: str | None
    full_name: str | None
    is_admin: bool
    created_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Profile:
        return cls(
            id=strawberry.ID(to_global_id("Profile", row["id"])),
            database_id=row["id"],
            email=row["email"],
            full_name=row["full_name"],
            is_admin=bool(row["is_admin"]),
            created_at=row["created_at"],
        )


async def load_profile(info: Info, user_id: UUID | None) -> Profile | None:
    if user_id is None:
        return None
    row = await info.context.loaders.profile.load(user_id)
    return Profile.from_row(row) if row else None
