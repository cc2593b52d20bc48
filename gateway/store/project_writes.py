"""Writes to v2 projects (as the viewer: the seed's policies let owners write their own), and
the checks of the rows a write points at."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import orjson

from gateway.db import Db

# The columns of ``v2_projects`` a client sets, with their SQL type; ``updateProject`` may also
# set the ones after ``metadata``.
CREATABLE = {
    "name": "text",
    "description": "text",
    "project_type": "text",
    "main_address": "text",
    "main_city_id": "uuid",
    "main_zone_id": "uuid",
    "geo_lon": "numeric",
    "geo_lat": "numeric",
    "color": "text",
    "icon": "text",
    "metadata": "jsonb",
}
UPDATABLE = {
    **CREATABLE,
    "starred": "boolean",
    "position": "integer",
    "status": "text",
    "plu_alert_enabled": "boolean",
    "plu_check_frequency": "text",
}


def _value(name: str, value: Any) -> Any:
    if UPDATABLE[name] == "jsonb" and value is not None:
        return orjson.dumps(value).decode()
    return value


async def create(db: Db, *, owner: UUID, values: dict[str, Any]) -> UUID:
    """A ``draft`` project of ``owner`` with the given columns (others take their defaults)."""
    names = list(values)
    columns = ", ".join(["user_id", "status", *names])
    placeholders = ", ".join(
        ["CAST(:owner AS uuid)", "'draft'", *(f"CAST(:{n} AS {CREATABLE[n]})" for n in names)]
    )
    rows = await db.fetch(
        f"INSERT INTO v2_projects ({columns}) VALUES ({placeholders}) RETURNING id",
        {"owner": owner, **{n: _value(n, v) for n, v in values.items()}},
    )
    return UUID(str(rows[0][0]))


async def update(db: Db, project_id: UUID, changes: dict[str, Any]) -> UUID | None:
    """Set the given columns; ``updated_at`` moves. The first edit of a draft sets
    ``first_edited_at`` and, unless ``status`` is given, makes it ``active`` (seed 000: a draft
    is auto-created and not yet edited). None: no project the viewer may change."""
    sets = [f"{n} = CAST(:{n} AS {UPDATABLE[n]})" for n in changes]
    sets.append("updated_at = now()")
    sets.append(
        "first_edited_at = CASE WHEN status = 'draft' THEN coalesce(first_edited_at, now()) "
        "ELSE first_edited_at END"
    )
    if "status" not in changes:
        sets.append("status = CASE WHEN status = 'draft' THEN 'active' ELSE status END")
    rows = await db.fetch(
        f"UPDATE v2_projects SET {', '.join(sets)} WHERE id = CAST(:id AS uuid) RETURNING id",
        {"id": project_id, **{n: _value(n, v) for n, v in changes.items()}},
    )
    return UUID(str(rows[0][0])) if rows else None


async def project_owner(db: Db, project_id: UUID) -> UUID | None:
    """The owner of a project the current role can see (None: none)."""
    rows = await db.fetch(
        "SELECT user_id FROM v2_projects WHERE id = CAST(:id AS uuid)", {"id": project_id}
    )
    return UUID(str(rows[0][0])) if rows else None


async def missing(db: Db, table: str, ids: Sequence[UUID]) -> list[UUID]:
    """Which of ``ids`` have no row in ``table`` (documents, cities, zones: public rows)."""
    if not ids:
        return []
    rows = await db.fetch(
        f"SELECT i FROM unnest(CAST(:ids AS uuid[])) AS i "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.id = i)",
        {"ids": list(ids)},
    )
    return [UUID(str(r[0])) for r in rows]
