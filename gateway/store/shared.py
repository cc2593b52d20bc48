"""Shared reference data: the cities and documents listings, the viewer's profile."""

from __future__ import annotations

from uuid import UUID

from gateway.db import Db
from gateway.store import Record, where_clause


async def cities_page(
    db: Db,
    *,
    search: str | None,
    after: tuple[str, UUID] | None,
    limit: int,
    columns: str,
) -> list[Record]:
    """Cities ordered by name then id, keyset after ``(name, id)``; ``columns`` over ``t``."""
    where, params = _city_filter(search)
    if after is not None:
        where.append("(name, id) > (:after_name, CAST(:after_id AS uuid))")
        params.update(after_name=after[0], after_id=after[1])
    sql = f"SELECT {columns} FROM cities t {where_clause(where)} ORDER BY t.name, t.id LIMIT :limit"
    return await db.fetch(sql, {**params, "limit": limit})


async def cities_count(db: Db, *, search: str | None) -> int:
    where, params = _city_filter(search)
    return int(await db.value(f"SELECT count(*) FROM cities {where_clause(where)}", params))


def _city_filter(search: str | None) -> tuple[list[str], dict[str, object]]:
    if not search:
        return [], {}
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return ["name ILIKE :pattern"], {"pattern": f"%{escaped}%"}


async def documents_page(
    db: Db,
    *,
    city_id: UUID | None,
    zone_id: UUID | None,
    after: tuple[str, UUID] | None,
    limit: int,
    columns: str,
) -> list[Record]:
    """Documents ordered by title then id (NULL titles first, as ''), keyset after
    ``(title, id)``; ``columns`` over ``t``."""
    where, params = _document_filter(city_id, zone_id)
    if after is not None:
        where.append("(coalesce(title, ''), id) > (:after_title, CAST(:after_id AS uuid))")
        params.update(after_title=after[0], after_id=after[1])
    sql = (
        f"SELECT {columns} FROM documents t {where_clause(where)} "
        "ORDER BY coalesce(t.title, ''), t.id LIMIT :limit"
    )
    return await db.fetch(sql, {**params, "limit": limit})


async def documents_count(db: Db, *, city_id: UUID | None, zone_id: UUID | None) -> int:
    where, params = _document_filter(city_id, zone_id)
    return int(await db.value(f"SELECT count(*) FROM documents {where_clause(where)}", params))


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


async def viewer_profile(db: Db, columns: str) -> Record | None:
    rows = await db.fetch(f"SELECT {columns} FROM profiles t WHERE t.id = auth.uid()")
    return rows[0] if rows else None


async def viewer_is_admin(db: Db) -> bool:
    value = await db.value(
        "SELECT coalesce((SELECT is_admin FROM profiles WHERE id = auth.uid()), false)"
    )
    return bool(value)


