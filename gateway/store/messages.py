"""Messages of both stores: pages per conversation (oldest first) and messages by id."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import text

from gateway.db import Db
from gateway.store import Row
from gateway.store.keyset import Keyset, oldest_first_after

TABLES = {"v1": "chat_messages", "v2": "v2_messages"}

def _table(source: str) -> str:
    return TABLES[source]


def after_predicate(after: Keyset | None, alias: str) -> tuple[str, dict[str, object]]:
    """The messages strictly after ``after`` in ``created_at, id`` order ("" for all); the
    messages without ``created_at`` come last."""
    if after is None:
        return "", {}
    return oldest_first_after(after, f"{alias}.created_at", f"{alias}.id")


async def first_by_conversation(
    db: Db,
    source: str,
    conversation_ids: Sequence[UUID],
    *,
    after: Keyset | None,
    limit: int,
) -> list[Row]:
    """The first ``limit`` messages (after ``after``) of each conversation, in one statement.

    Order is ``created_at`` then ``id`` ascending; rows carry ``conversation_key``.
    """
    table = _table(source)
    keyset, params = after_predicate(after, "m")
    params.update(ids=list(conversation_ids), limit=limit)
    sql = f"""
    SELECT k.conversation_key, x.* FROM unnest(CAST(:ids AS uuid[])) AS k(conversation_key)
    CROSS JOIN LATERAL (
      SELECT m.* FROM {table} m WHERE m.conversation_id = k.conversation_key
        {f"AND {keyset}" if keyset else ""}
      ORDER BY m.created_at, m.id LIMIT :limit
    ) x
    """
    return list(await db.rows(text(sql), params))


async def count_by_conversation(
    db: Db, source: str, conversation_ids: Sequence[UUID]
) -> dict[UUID, int]:
    rows = await db.rows(
        text(
            f"SELECT conversation_id, count(*)::int AS n FROM {_table(source)} "
            "WHERE conversation_id = ANY(CAST(:ids AS uuid[])) GROUP BY conversation_id"
        ),
        {"ids": list(conversation_ids)},
    )
    return {r["conversation_id"]: r["n"] for r in rows}


async def by_ids(db: Db, source: str, ids: Sequence[UUID]) -> list[Row]:
    return list(
        await db.rows(
            text(f"SELECT * FROM {_table(source)} WHERE id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": list(ids)},
        )
    )
