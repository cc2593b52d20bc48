"""v2 projects and their documents."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import text

from gateway.db import Db
from gateway.store import Record, Row
from gateway.store.keyset import Keyset, newest_first_after
from gateway.store.shared import DOCUMENT_JOINS, DOCUMENT_RELATED


def _filter(status: str | None, starred: bool | None) -> tuple[list[str], dict[str, object]]:
    where: list[str] = []
    params: dict[str, object] = {}
    if status is not None:
        where.append("status = :status")
        params["status"] = status
    if starred is not None:
        where.append("coalesce(starred, false) = :starred")
        params["starred"] = starred
    return where, params


async def page(
    db: Db,
    *,
    status: str | None,
    starred: bool | None,
    after: Keyset | None,
    limit: int,
    columns: str = "t.*",
) -> list[Record]:
    """Visible projects, newest first (``created_at`` desc, then id desc); ``columns`` over
    the alias ``t``."""
    where, params = _filter(status, starred)
    if after is not None:
        predicate, keyset_params = newest_first_after(after, "created_at", "id")
        where.append(predicate)
        params.update(keyset_params)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = (
        f"SELECT {columns} FROM v2_projects t {clause} "
        "ORDER BY created_at DESC NULLS LAST, id DESC LIMIT :limit"
    )
    return await db.fetch(sql, {**params, "limit": limit})


async def count(db: Db, *, status: str | None, starred: bool | None) -> int:
    where, params = _filter(status, starred)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return int(await db.scalar(text(f"SELECT count(*) FROM v2_projects {clause}"), params))


async def by_ids(db: Db, ids: Sequence[UUID]) -> list[Row]:
    """Projects by id, with their main city and zone embedded (``main_city_row``,
    ``main_zone_row``: jsonb, NULL when absent)."""
    sql = (
        "SELECT p.*, to_jsonb(rc) AS main_city_row, to_jsonb(rz) AS main_zone_row "
        "FROM v2_projects p LEFT JOIN cities rc ON rc.id = p.main_city_id "
        "LEFT JOIN zones rz ON rz.id = p.main_zone_id WHERE p.id = ANY(CAST(:ids AS uuid[]))"
    )
    return list(await db.rows(text(sql), {"ids": list(ids)}))


async def documents_by_project(db: Db, project_ids: Sequence[UUID]) -> list[Row]:
    """Documents of each project, pinned first, then by when they were added."""
    sql = f"""
    SELECT l.project_id AS project_key, l.pinned, d.*, {DOCUMENT_RELATED}
    FROM v2_project_documents l JOIN documents d ON d.id = l.document_id {DOCUMENT_JOINS}
    WHERE l.project_id = ANY(CAST(:ids AS uuid[]))
    ORDER BY l.project_id, coalesce(l.pinned, false) DESC, l.added_at, d.id
    """
    return list(await db.rows(text(sql), {"ids": list(project_ids)}))
