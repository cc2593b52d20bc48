"""The unified conversation listing over v1 and v2.

The listing is one statement: a UNION ALL of the two stores, each half carrying the keyset
predicate and the filters, so Postgres merges two ordered index scans and stops after
``limit`` rows. It reads the keys only; the rows are read by id with what the query selects
(``gateway.store.select``). A listing of one store reads its rows in the same statement
(``rows_sql``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from gateway.db import Db
from gateway.store import Record, where_clause
from gateway.store.keyset import Keyset, limit_clause, newest_first_clauses, newest_first_order


def order_by(alias: str | None = None) -> str:
    """The listing's order (newest message first), of ``alias``'s columns."""
    at = f"{alias}." if alias else ""
    return f"ORDER BY {newest_first_order(f'{at}last_message_at', f'{at}id')}"


ORDER = order_by()
TABLES = {"v1": "chat_conversations", "v2": "v2_conversations"}


@dataclass(frozen=True)
class ConversationFilter:
    source: str | None = None  # 'v1' | 'v2'
    owner_id: UUID | None = None
    project_id: UUID | None = None
    document_id: UUID | None = None
    is_active: bool | None = None
    last_message_after: datetime | None = None
    last_message_before: datetime | None = None
    include_migrated: bool = False


def _conditions(source: str, f: ConversationFilter) -> tuple[list[str], dict[str, object]] | None:
    """WHERE conditions of one half, or None when the filter excludes that store entirely."""
    if f.source is not None and f.source != source:
        return None
    if f.project_id is not None and source == "v1":
        return None
    where: list[str] = []
    params: dict[str, object] = {}
    if f.owner_id is not None:
        where.append("c.user_id = :owner_id")
        params["owner_id"] = f.owner_id
    if f.project_id is not None:
        where.append("c.project_id = :project_id")
        params["project_id"] = f.project_id
    if f.document_id is not None:
        where.append(
            "c.document_id = :document_id"
            if source == "v1"
            else "EXISTS (SELECT 1 FROM v2_conversation_documents l "
            "WHERE l.conversation_id = c.id AND l.document_id = :document_id)"
        )
        params["document_id"] = f.document_id
    if f.is_active is not None:
        where.append("c.is_active = :is_active")
        params["is_active"] = f.is_active
    if f.last_message_after is not None:
        where.append("c.last_message_at > :lm_after")
        params["lm_after"] = f.last_message_after
    if f.last_message_before is not None:
        where.append("c.last_message_at < :lm_before")
        params["lm_before"] = f.last_message_before
    if source == "v1" and not f.include_migrated:
        where.append(
            "NOT EXISTS (SELECT 1 FROM migration_tracking t WHERE t.v1_conversation_id = c.id "
            "AND t.migration_status = 'completed')"
        )
    return where, params


def _halves(f: ConversationFilter) -> tuple[list[tuple[str, list[str]]], dict[str, object]]:
    """Each store the filter reads, with its conditions; their parameters."""
    halves: list[tuple[str, list[str]]] = []
    params: dict[str, object] = {}
    for source in ("v1", "v2"):
        built = _conditions(source, f)
        if built is None:
            continue
        where, p = built
        params.update(p)
        halves.append((source, where))
    return halves, params


def listing_sql(
    f: ConversationFilter, *, after: Keyset | None, limit: int
) -> tuple[str, dict[str, object]] | None:
    """The listing's keys (``source``, ``id``, ``last_message_at``) in ``ORDER``: the rows
    themselves are read by id, with what the query selects of each store's type. None when
    the filter excludes both stores. After a cursor, each store is read as its index's ranges
    (``newest_first_clauses``): a deep page starts where the cursor is."""
    halves, params = _halves(f)
    if not halves:
        return None
    parts = []
    for s, where in halves:
        clauses, kparams = newest_first_clauses(where, after, "c.last_message_at", "c.id")
        params.update(kparams)
        parts += [
            f"(SELECT '{s}' AS source, c.id, c.last_message_at FROM {TABLES[s]} c {clause} "
            f"{ORDER} {limit_clause(limit)})"
            for clause in clauses
        ]
    sql = f"SELECT * FROM ({' UNION ALL '.join(parts)}) u {ORDER} {limit_clause(limit)}"
    return sql, params


def parameterless(f: ConversationFilter, after: Keyset | None) -> bool:
    """Whether the listing's statements carry no bind parameter (``listing_sql``,
    ``count_sql``): no cursor, and no filter with a value."""
    return after is None and not _halves(f)[1]


def sources(f: ConversationFilter) -> list[str]:
    """The stores (``v1``, ``v2``) the filtered listing reads."""
    return [source for source in ("v1", "v2") if _conditions(source, f) is not None]


def rows_sql(
    f: ConversationFilter, store: str, select: str, *, after: Keyset | None, limit: int
) -> tuple[str, dict[str, object]]:
    """The listing of a filter that reads one store (``store``, as ``sources`` says; the two
    stores' rows differ), as rows: ``select`` (the read engine's column list over ``t``,
    ``gateway.store.select``), then ``last_message_at``, in ``ORDER``. One statement where the
    keys and then the rows by id took two."""
    built = listing_sql(f, after=after, limit=limit)
    if built is None:
        raise ValueError("the filter reads neither store")
    sql, params = built
    return (
        f"SELECT {select}, u.last_message_at FROM ({sql}) u JOIN {TABLES[store]} t ON t.id = u.id "
        f"{order_by('u')}",
        params,
    )


def count_sql(f: ConversationFilter) -> tuple[str, dict[str, object]]:
    """A statement counting the filtered listing (0 when it excludes both stores)."""
    halves, params = _halves(f)
    if not halves:
        return "SELECT 0", {}
    parts = [
        f"(SELECT count(*) FROM {TABLES[s]} c {where_clause(where)})"
        for s, where in halves
    ]
    return f"SELECT ({' + '.join(parts)})::int", params


async def listing(
    db: Db, f: ConversationFilter, *, after: Keyset | None, limit: int
) -> list[Record]:
    built = listing_sql(f, after=after, limit=limit)
    if built is None:
        return []
    return await db.fetch(*built)


async def listing_rows(
    db: Db, f: ConversationFilter, store: str, select: str, *, after: Keyset | None, limit: int
) -> list[Record]:
    """``rows_sql``'s rows."""
    return await db.fetch(*rows_sql(f, store, select, after=after, limit=limit))


async def count(db: Db, f: ConversationFilter) -> int:
    sql, params = count_sql(f)
    return int(await db.value(sql, params))
