"""v2 projects: the listing."""

from __future__ import annotations

from gateway.db import Db
from gateway.store import Record
from gateway.store.keyset import Keyset, newest_first_after


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
    columns: str,
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
        "ORDER BY t.created_at DESC NULLS LAST, t.id DESC LIMIT :limit"
    )
    return await db.fetch(sql, {**params, "limit": limit})


async def count(db: Db, *, status: str | None, starred: bool | None) -> int:
    where, params = _filter(status, starred)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return int(await db.value(f"SELECT count(*) FROM v2_projects {clause}", params))
