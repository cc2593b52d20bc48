"""The unified conversation listing over v1 and v2, and conversations by id.

Both stores are read into one row shape (``COLUMNS``), tagged with ``source``. The listing is
one statement: a UNION ALL of the two stores, each half carrying the keyset predicate and the
filters, so Postgres merges two ordered index scans and stops after ``limit`` rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import text

from gateway.db import Db
from gateway.store import Record, Row
from gateway.store.keyset import Keyset, newest_first_after
from gateway.store.shared import DOCUMENT_JOINS, DOCUMENT_RELATED

V1_SELECT = """
SELECT 'v1' AS source, c.id, c.user_id, c.is_active, c.last_message_at, c.created_at,
  c.document_id, NULL::uuid AS project_id, NULL::text AS conversation_type,
  coalesce(d.title, (
    SELECT left(m.message, 80) FROM chat_messages m
    WHERE m.conversation_id = c.id AND m.role = 'user'
    ORDER BY m.created_at, m.id LIMIT 1
  )) AS title,
  NULL::jsonb AS context_metadata, NULL::timestamptz AS archived_at,
  (SELECT count(*) FROM chat_messages m WHERE m.conversation_id = c.id)::int AS message_count,
  (c.document_id IS NOT NULL)::int AS document_count,
  NULL::timestamptz AS updated_at
FROM chat_conversations c LEFT JOIN documents d ON d.id = c.document_id
"""

V2_SELECT = """
SELECT 'v2' AS source, c.id, c.user_id, c.is_active, c.last_message_at, c.created_at,
  NULL::uuid AS document_id, c.project_id, c.conversation_type, c.title,
  c.context_metadata, c.archived_at, c.message_count, c.document_count, c.updated_at
FROM v2_conversations c
"""

ORDER = "ORDER BY last_message_at DESC NULLS LAST, id DESC"


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


def _keyset(after: Keyset | None) -> tuple[str | None, dict[str, object]]:
    if after is None:
        return None, {}
    return newest_first_after(after, "c.last_message_at", "c.id")


def _halves(
    f: ConversationFilter, extra: str | None = None
) -> tuple[list[tuple[str, str]], dict[str, object]]:
    halves: list[tuple[str, str]] = []
    params: dict[str, object] = {}
    for source in ("v1", "v2"):
        built = _conditions(source, f)
        if built is None:
            continue
        where, p = built
        if extra:
            where = [*where, extra]
        params.update(p)
        halves.append((source, f"WHERE {' AND '.join(where)}" if where else ""))
    return halves, params


def page_sql(
    f: ConversationFilter, *, after: Keyset | None, limit: int
) -> tuple[str, dict[str, object]] | None:
    """The listing statement (rows in ``ORDER``) and its parameters; None when the filter
    excludes both stores."""
    keyset, kparams = _keyset(after)
    halves, params = _halves(f, keyset)
    if not halves:
        return None
    selects = {"v1": V1_SELECT, "v2": V2_SELECT}
    parts = [f"({selects[s]} {where} {ORDER} LIMIT :limit)" for s, where in halves]
    sql = f"SELECT * FROM ({' UNION ALL '.join(parts)}) u {ORDER} LIMIT :limit"
    return sql, {**params, **kparams, "limit": limit}


def count_sql(f: ConversationFilter) -> tuple[str, dict[str, object]]:
    """A statement counting the filtered listing (0 when it excludes both stores)."""
    halves, params = _halves(f)
    if not halves:
        return "SELECT 0", {}
    tables = {"v1": "chat_conversations", "v2": "v2_conversations"}
    parts = [f"(SELECT count(*) FROM {tables[s]} c {where})" for s, where in halves]
    return f"SELECT ({' + '.join(parts)})::int", params


async def page(db: Db, f: ConversationFilter, *, after: Keyset | None, limit: int) -> list[Row]:
    """Up to ``limit`` conversations of both stores after ``after``, newest activity first."""
    built = page_sql(f, after=after, limit=limit)
    if built is None:
        return []
    sql, params = built
    return list(await db.rows(text(sql), params))


def listing_sql(
    f: ConversationFilter, *, after: Keyset | None, limit: int
) -> tuple[str, dict[str, object]] | None:
    """The listing's keys (``source``, ``id``, ``last_message_at``) in ``ORDER``: the rows
    themselves are read by id, with what the query selects of each store's type. None when
    the filter excludes both stores."""
    keyset, kparams = _keyset(after)
    halves, params = _halves(f, keyset)
    if not halves:
        return None
    tables = {"v1": "chat_conversations", "v2": "v2_conversations"}
    parts = [
        f"(SELECT '{s}' AS source, c.id, c.last_message_at FROM {tables[s]} c {where} "
        f"{ORDER} LIMIT :limit)"
        for s, where in halves
    ]
    sql = f"SELECT * FROM ({' UNION ALL '.join(parts)}) u {ORDER} LIMIT :limit"
    return sql, {**params, **kparams, "limit": limit}


async def listing(
    db: Db, f: ConversationFilter, *, after: Keyset | None, limit: int
) -> list[Record]:
    built = listing_sql(f, after=after, limit=limit)
    if built is None:
        return []
    return await db.fetch(*built)


async def count(db: Db, f: ConversationFilter) -> int:
    sql, params = count_sql(f)
    return int(await db.scalar(text(sql), params))


async def v1_by_ids(db: Db, ids: Sequence[UUID]) -> list[Row]:
    sql = f"{V1_SELECT} WHERE c.id = ANY(CAST(:ids AS uuid[]))"
    return list(await db.rows(text(sql), {"ids": list(ids)}))


async def v2_by_ids(db: Db, ids: Sequence[UUID]) -> list[Row]:
    sql = f"{V2_SELECT} WHERE c.id = ANY(CAST(:ids AS uuid[]))"
    return list(await db.rows(text(sql), {"ids": list(ids)}))


async def v2_page_by_project(
    db: Db, project_ids: Sequence[UUID], *, after: Keyset | None, limit: int
) -> list[Row]:
    """The first ``limit`` conversations of each project (after ``after``), one statement."""
    keyset, kparams = _keyset(after)
    where = f"AND {keyset}" if keyset else ""
    sql = f"""
    SELECT p.project_key, x.* FROM unnest(CAST(:ids AS uuid[])) AS p(project_key)
    CROSS JOIN LATERAL ({V2_SELECT} WHERE c.project_id = p.project_key {where}
                        {ORDER} LIMIT :limit) x
    """
    return list(await db.rows(text(sql), {"ids": list(project_ids), "limit": limit, **kparams}))


async def v2_count_by_project(db: Db, project_ids: Sequence[UUID]) -> dict[UUID, int]:
    rows = await db.rows(
        text(
            "SELECT project_id, count(*)::int AS n FROM v2_conversations "
            "WHERE project_id = ANY(CAST(:ids AS uuid[])) GROUP BY project_id"
        ),
        {"ids": list(project_ids)},
    )
    return {r["project_id"]: r["n"] for r in rows}


async def documents_by_conversation(db: Db, ids: Sequence[tuple[str, UUID]]) -> list[Row]:
    """Documents linked to conversations: v1 ``document_id``, v2 ``v2_conversation_documents``
    (oldest link first). Each row carries ``conversation_key`` and ``source_key``."""
    v1 = [i for s, i in ids if s == "v1"]
    v2 = [i for s, i in ids if s == "v2"]
    sql = f"""
    SELECT 'v1' AS source_key, c.id AS conversation_key, d.*, NULL::timestamptz AS linked_at,
      {DOCUMENT_RELATED}
    FROM chat_conversations c JOIN documents d ON d.id = c.document_id {DOCUMENT_JOINS}
    WHERE c.id = ANY(CAST(:v1 AS uuid[]))
    UNION ALL
    SELECT 'v2', l.conversation_id, d.*, l.added_at, {DOCUMENT_RELATED}
    FROM v2_conversation_documents l JOIN documents d ON d.id = l.document_id {DOCUMENT_JOINS}
    WHERE l.conversation_id = ANY(CAST(:v2 AS uuid[]))
    ORDER BY linked_at NULLS FIRST, id
    """
    return list(await db.rows(text(sql), {"v1": v1, "v2": v2}))
