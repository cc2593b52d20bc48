"""Shared reference data: profiles, cities, zonings, zones, typologies, documents."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import text

from gateway.db import Db
from gateway.store import Record, Row

TABLES = ("profiles", "cities", "zonings", "zones", "typologies", "documents")

# Documents with their city, zone and typology embedded (``to_jsonb`` of the joined row, NULL
# when absent), so that ``Document.city|zone|typology`` need no statement of their own.
DOCUMENT_RELATED = (
    "to_jsonb(rc) AS city_row, to_jsonb(rz) AS zone_row, to_jsonb(rt) AS typology_row"
)
DOCUMENT_JOINS = (
    "LEFT JOIN cities rc ON rc.id = d.city_id "
    "LEFT JOIN zones rz ON rz.id = d.zone_id "
    "LEFT JOIN typologies rt ON rt.id = d.typology_id"
)


def embedded(value: Any) -> Row | None:
    """A row embedded as jsonb (``to_jsonb(t)``) with its uuid columns parsed back."""
    if not isinstance(value, Mapping):
        return None
    return {k: _uuid_or_value(v) if k == "id" or k.endswith("_id") else v for k, v in value.items()}


def _uuid_or_value(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return UUID(value)
    except ValueError:  # an ``*_id`` column that is not a uuid
        return value


async def by_ids(db: Db, table: str, ids: Sequence[UUID]) -> list[Row]:
    """Rows of a shared table whose id is in ``ids`` (any order; missing ids are absent)."""
    if table not in TABLES:
        raise ValueError(f"not a shared table: {table}")
    return list(
        await db.rows(
            text(f"SELECT * FROM {table} WHERE id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": list(ids)},
        )
    )


async def documents_by_ids(db: Db, ids: Sequence[UUID]) -> list[Row]:
    """Documents whose id is in ``ids``, with their related rows embedded."""
    sql = (
        f"SELECT d.*, {DOCUMENT_RELATED} FROM documents d {DOCUMENT_JOINS} "
        "WHERE d.id = ANY(CAST(:ids AS uuid[]))"
    )
    return list(await db.rows(text(sql), {"ids": list(ids)}))


async def zones_by_cities(db: Db, city_ids: Sequence[UUID]) -> list[Row]:
    return list(
        await db.rows(
            text(
                "SELECT * FROM zones WHERE city_id = ANY(CAST(:ids AS uuid[])) ORDER BY code, id"
            ),
            {"ids": list(city_ids)},
        )
    )


async def cities_page(
    db: Db,
    *,
    search: str | None,
    after: tuple[str, UUID] | None,
    limit: int,
    columns: str = "t.*",
) -> list[Record]:
    """Cities ordered by name then id, keyset after ``(name, id)``; ``columns`` over ``t``."""
    where, params = _city_filter(search)
    if after is not None:
        where.append("(name, id) > (:after_name, CAST(:after_id AS uuid))")
        params.update(after_name=after[0], after_id=after[1])
    sql = f"SELECT {columns} FROM cities t {_where(where)} ORDER BY name, id LIMIT :limit"
    return await db.fetch(sql, {**params, "limit": limit})


async def cities_count(db: Db, *, search: str | None) -> int:
    where, params = _city_filter(search)
    return int(await db.scalar(text(f"SELECT count(*) FROM cities {_where(where)}"), params))


def _city_filter(search: str | None) -> tuple[list[str], dict[str, object]]:
    if not search:
        return [], {}
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return ["name ILIKE :pattern"], {"pattern": f"%{escaped}%"}


def _where(conditions: list[str]) -> str:
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


async def documents_page(
    db: Db,
    *,
    city_id: UUID | None,
    zone_id: UUID | None,
    after: tuple[str, UUID] | None,
    limit: int,
    columns: str = "t.*",
) -> list[Record]:
    """Documents ordered by title then id (NULL titles first, as ''), keyset after
    ``(title, id)``; ``columns`` over ``t``."""
    where, params = _document_filter(city_id, zone_id)
    if after is not None:
        where.append("(coalesce(title, ''), id) > (:after_title, CAST(:after_id AS uuid))")
        params.update(after_title=after[0], after_id=after[1])
    sql = (
        f"SELECT {columns} FROM documents t {_where(where)} "
        "ORDER BY coalesce(title, ''), id LIMIT :limit"
    )
    return await db.fetch(sql, {**params, "limit": limit})


async def documents_count(db: Db, *, city_id: UUID | None, zone_id: UUID | None) -> int:
    where, params = _document_filter(city_id, zone_id)
    return int(await db.scalar(text(f"SELECT count(*) FROM documents {_where(where)}"), params))


def _document_filter(
    city_id: UUID | None, zone_id: UUID | None
) -> tuple[list[str], dict[str, object]]:
    where: list[str] = []
    params: dict[str, object] = {}
    if city_id is not None:
        where.append("city_id = :city_id")
        params["city_id"] = city_id
    if zone_id is not None:
        where.append("zone_id = :zone_id")
        params["zone_id"] = zone_id
    return where, params


async def viewer_profile(db: Db, columns: str = "t.*") -> Record | None:
    rows = await db.fetch(f"SELECT {columns} FROM profiles t WHERE t.id = auth.uid()")
    return rows[0] if rows else None


async def viewer_is_admin(db: Db) -> bool:
    value = await db.scalar(
        text("SELECT coalesce((SELECT is_admin FROM profiles WHERE id = auth.uid()), false)")
    )
    return bool(value)


