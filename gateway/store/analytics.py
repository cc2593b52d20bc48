"""analytics.chat_events: filtered pages and SQL-side aggregates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import text

from gateway.db import Db
from gateway.store import Record, Row, where_clause
from gateway.store.keyset import Keyset, newest_first_page

# groupBy value -> (SQL expression, output column)
GROUPS = {
    "source": "metadata->>'source'",
    "day": "(created_at AT TIME ZONE 'UTC')::date",
    "model": "model_name",
}


@dataclass(frozen=True)
class EventFilter:
    source: str | None = None  # 'v1' | 'v2'
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    user_id: UUID | None = None
    document_id: UUID | None = None
    model_name: str | None = None


def _where(f: EventFilter) -> tuple[list[str], dict[str, object]]:
    where: list[str] = []
    params: dict[str, object] = {}
    for column, value, op in (
        ("metadata->>'source'", f.source, "="),
        ("created_at", f.start, ">="),
        ("created_at", f.end, "<"),
        ("user_id", f.user_id, "="),
        ("document_id", f.document_id, "="),
        ("model_name", f.model_name, "="),
    ):
        if value is not None:
            name = f"p{len(params)}"
            where.append(f"{column} {op} :{name}")
            params[name] = value
    return where, params


async def page(
    db: Db, f: EventFilter, *, after: Keyset | None, limit: int, columns: str
) -> list[Record]:
    """Events newest first (``created_at`` desc, then id desc); ``columns`` over ``t``."""
    where, params = _where(f)
    source = f"SELECT {columns} FROM analytics.chat_events t"
    return await newest_first_page(db, source, where, params, after, limit)


def parameterless(f: EventFilter, after: Keyset | None) -> bool:
    """Whether the listing's statements carry no bind parameter: no cursor, no filter."""
    return after is None and not _where(f)[1]


async def count(db: Db, f: EventFilter) -> int:
    where, params = _where(f)
    sql = f"SELECT count(*) FROM analytics.chat_events {where_clause(where)}"
    return int(await db.value(sql, params))


async def stats(db: Db, f: EventFilter, group_by: Sequence[str]) -> list[Row]:
    """One row per group with ``events``, ``tokens_total`` and ``cost_total``, computed in SQL.

    Grouped columns are named ``source``, ``day``, ``model``; the others are NULL.
    """
    where, params = _where(f)
    groups = list(dict.fromkeys(group_by))
    selected = [
        f"{GROUPS[g]} AS {g}" if g in groups else f"NULL AS {g}" for g in ("source", "day", "model")
    ]
    group_clause = f"GROUP BY {', '.join(GROUPS[g] for g in groups)}" if groups else ""
    order = f"ORDER BY {', '.join(str(i + 1) for i in range(3))}"
    sql = (
        f"SELECT {', '.join(selected)}, count(*)::int AS events, "
        "coalesce(sum(tokens_total), 0)::bigint AS tokens_total, "
        "coalesce(sum(cost_total), 0)::numeric AS cost_total "
        f"FROM analytics.chat_events {where_clause(where)} {group_clause} {order}"
    )
    return list(await db.rows(text(sql), params))
