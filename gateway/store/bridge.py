"""migration_tracking: read side (the writes live in ``gateway.store.migration``)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import text

from gateway.db import Db
from gateway.store import Row


async def by_column(db: Db, column: str, ids: Sequence[UUID]) -> list[Row]:
    if column not in ("id", "v1_conversation_id", "v2_conversation_id"):
        raise ValueError(column)
    return list(
        await db.rows(
            text(f"SELECT * FROM migration_tracking WHERE {column} = ANY(CAST(:ids AS uuid[]))"),
            {"ids": list(ids)},
        )
    )
