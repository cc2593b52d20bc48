"""v2 projects: the listing."""

from __future__ import annotations

from gateway.db import Db
from gateway.store import Record, where_clause
from gateway.store.keyset import Keyset, newest_first_page


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
    source = f"SELECT {columns} FROM v2_projects t"
    return await newest_first_page(db, source, where, params, after, limit)


def parameterless(status: str | None, starred: bool | None, after: Keyset | None) -> bool:
    """Whether the listing's statements carry no bind parameter: no cursor, no filter."""
    return after is None and not _filter(status, starred)[1]


async def count(db: Db, *, status: str | None, starred: bool | None) -> int:
    where, params = _filter(status, starred)
    return int(await db.value(f"SELECT count(*) FROM v2_projects {where_clause(where)}", params))
