"""Address research of both stores: the viewer's listing (keys only, newest first) and v2's
insert."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from gateway.db import Db
from gateway.store import Record
from gateway.store.keyset import Keyset, newest_first_clauses, newest_first_order

TABLES = {"v1": "research_history", "v2": "v2_research_history"}
ORDER = f"ORDER BY {newest_first_order('created_at', 'id')}"


async def listing(
    db: Db, *, user_id: UUID | None, source: str | None, after: Keyset | None, limit: int
) -> list[Record]:
    """The keys (``source``, ``id``, ``created_at``) of ``user_id``'s research (everyone's the
    viewer can see when None), in ``ORDER``: one UNION ALL of each store's index ranges
    (``newest_first_clauses``)."""
    where: list[str] = []
    params: dict[str, object] = {"limit": limit}
    if user_id is not None:
        where.append("r.user_id = CAST(:user_id AS uuid)")
        params["user_id"] = user_id
    clauses, keyset = newest_first_clauses(where, after, "r.created_at", "r.id")
    params.update(keyset)
    parts = [
        f"(SELECT '{s}' AS source, r.id, r.created_at FROM {table} r {clause} {ORDER} "
        "LIMIT :limit)"
        for s, table in TABLES.items()
        if source in (None, s)
        for clause in clauses
    ]
    sql = f"SELECT * FROM ({' UNION ALL '.join(parts)}) u {ORDER} LIMIT :limit"
    return await db.fetch(sql, params)


COLUMNS = {
    "address_input": "text",
    "search_intent": "text",
    "geocoded_address": "text",
    "city_id": "uuid",
    "zone_id": "uuid",
    "geo_lon": "numeric",
    "geo_lat": "numeric",
    "documents_found": "uuid[]",
    "success": "boolean",
    "error_reason": "text",
    "conversation_id": "uuid",
    "project_id": "uuid",
}


async def record(db: Db, *, owner: UUID, values: dict[str, Any]) -> UUID:
    """A v2 research entry of ``owner``."""
    names = [n for n in COLUMNS if n in values]
    columns = ", ".join(["user_id", *names])
    placeholders = ", ".join(
        ["CAST(:owner AS uuid)", *(f"CAST(:{n} AS {COLUMNS[n]})" for n in names)]
    )
    rows = await db.fetch(
        f"INSERT INTO v2_research_history ({columns}) VALUES ({placeholders}) RETURNING id",
        {"owner": owner, **{n: values[n] for n in names}},
    )
    return UUID(str(rows[0][0]))
