"""Copying one v1 conversation into v2, and reverting that copy. v1 rows are only read.

Concurrency: the caller first *claims* the conversation's ``migration_tracking`` row with
``INSERT … ON CONFLICT DO NOTHING RETURNING`` and, failing that, locks the existing row with
``SELECT … FOR UPDATE``, all in the request's transaction. The unique index on
``v1_conversation_id`` makes concurrent claimers wait for the first transaction to finish, so
exactly one copy is made and every other caller then reads the completed row. A row lock on
the v1 conversation would work too but would block the v1 application's own writes; an
advisory lock would not survive PgBouncer's transaction pooling as clearly as a row lock does.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import text

from gateway.db import Db
from gateway.store import Row
from gateway.store.chat_writes import CHANNEL

CLAIM = text(
    "INSERT INTO migration_tracking (v1_conversation_id, migration_status, migrated_at) "
    "VALUES (:v1, 'pending', now()) ON CONFLICT (v1_conversation_id) DO NOTHING RETURNING *"
)
LOCK = text("SELECT * FROM migration_tracking WHERE v1_conversation_id = :v1 FOR UPDATE")
TRACKING = text("SELECT * FROM migration_tracking WHERE id = :id")

# Every sub-statement sees the same snapshot; foreign keys between the rows inserted by sibling
# CTEs are checked at the end of the statement.
COPY = text(
    """
    WITH batch AS MATERIALIZED (
      SELECT b.tracking_id, b.v1_id, b.v2_id, b.project_id, b.new_project, c.user_id,
             c.document_id, c.is_active, c.last_message_at, c.created_at
      FROM unnest(CAST(:tracking AS uuid[]), CAST(:v1 AS uuid[]), CAST(:v2 AS uuid[]),
                  CAST(:projects AS uuid[]), CAST(:new_project AS boolean[]))
           AS b(tracking_id, v1_id, v2_id, project_id, new_project)
      JOIN chat_conversations c ON c.id = b.v1_id
    ),
    -- Each conversation's messages through idx_chat_messages_conversation (OFFSET 0 keeps the
    -- subquery a per-conversation index scan rather than a scan of all of chat_messages).
    src AS MATERIALIZED (
      SELECT m.id, m.conversation_id, b.v2_id, m.user_id, m.role, m.message, m.document_id,
             m.conversation_turn, m.reply_to_message_id, m.metadata, m.created_at,
             row_number() OVER (PARTITION BY m.conversation_id ORDER BY m.created_at, m.id) AS rn
      FROM batch b CROSS JOIN LATERAL (
        SELECT * FROM chat_messages m WHERE m.conversation_id = b.v1_id OFFSET 0
      ) m
    ),
    -- The old→new id map: random ids, handed out in v1 order within each conversation.
    fresh AS (
      SELECT conversation_id, array_agg(new_id ORDER BY new_id) AS new_ids
      FROM (SELECT conversation_id, gen_random_uuid() AS new_id FROM src) g
      GROUP BY conversation_id
    ),
    ids AS MATERIALIZED (
      SELECT s.*, f.new_ids[s.rn] AS new_id FROM src s JOIN fresh f USING (conversation_id)
    ),
    stats AS (
      SELECT conversation_id, count(*) AS n, max(created_at) AS last
      FROM src GROUP BY conversation_id
    ),
    first_user AS (
      SELECT DISTINCT ON (conversation_id) conversation_id, left(message, 80) AS title
      FROM src WHERE role = 'user' ORDER BY conversation_id, created_at, id
    ),
    projects AS (
      INSERT INTO v2_projects (id, user_id, status, metadata, created_at)
      SELECT b.project_id, b.user_id, 'draft',
             jsonb_build_object('migrated_from_v1', true,
                                'migration_id', CAST(b.tracking_id AS text)),
             now()
      FROM batch b WHERE b.new_project
    ),
    conversations AS (
      INSERT INTO v2_conversations (id, user_id, project_id, conversation_type, title,
        is_active, last_message_at, message_count, document_count, created_at, updated_at)
      SELECT b.v2_id, b.user_id, b.project_id, 'address_analysis', coalesce(d.title, f.title),
             b.is_active, coalesce(s.last, b.last_message_at), coalesce(s.n, 0),
             (b.document_id IS NOT NULL)::int, b.created_at, now()
      FROM batch b
      LEFT JOIN documents d ON d.id = b.document_id
      LEFT JOIN stats s ON s.conversation_id = b.v1_id
      LEFT JOIN first_user f ON f.conversation_id = b.v1_id
    ),
    messages AS (
      INSERT INTO v2_messages (id, conversation_id, user_id, role, message,
        referenced_documents, conversation_turn, reply_to_message_id, metadata, created_at)
      SELECT s.new_id, s.v2_id, s.user_id, s.role, s.message,
             CASE WHEN s.document_id IS NULL THEN ARRAY[]::uuid[] ELSE ARRAY[s.document_id] END,
             s.conversation_turn, r.new_id,
             coalesce(s.metadata, '{}'::jsonb) || '{"migrated_from_v1": true}'::jsonb,
             s.created_at
      FROM ids s
      LEFT JOIN ids r ON r.id = s.reply_to_message_id AND r.conversation_id = s.conversation_id
    ),
    links AS (
      INSERT INTO v2_conversation_documents (conversation_id, document_id, added_by,
        relevance_score, added_at)
      SELECT b.v2_id, b.document_id, 'migration', 1.0, b.created_at
      FROM batch b WHERE b.document_id IS NOT NULL
    ),
    done AS (
      UPDATE migration_tracking t SET v2_conversation_id = b.v2_id,
        v2_project_id = b.project_id, migration_status = 'completed', migrated_at = now(),
        error_message = NULL, reverted_at = NULL
      FROM batch b WHERE t.id = b.tracking_id
      RETURNING t.id
    )
    SELECT (SELECT count(*) FROM done) AS conversations, (SELECT count(*) FROM src) AS messages,
      -- a v1 conversation's subscribers are told where it went (delivered at COMMIT)
      (SELECT count(pg_notify(CAST(:channel AS text), json_build_object('k', 'x', 's', 'v1',
          'id', b.v1_id, 'c', b.v1_id, 'u', b.user_id, 'to', b.v2_id)::text))
       FROM batch b JOIN done d ON d.id = b.tracking_id) AS announced
    """
)

# The copy is a prepared statement: after five runs PostgreSQL may switch to a generic plan,
# which cannot see the arrays' lengths, guesses a handful of rows and remaps replies with a
# nested loop (measured: 8x slower per batch). Planning each batch with its real arrays is
# cheap next to running it. Local to the transaction, so safe behind PgBouncer.
# The copies' messages are not announced one by one to every worker (revision 0009_realtime):
# nobody can wait for the new conversation's messages yet; its activity is announced.
CUSTOM_PLAN = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
    "set_config('mwplu.quiet_messages', 'on', true)"
)
# The v1 conversations being copied, held against a concurrent ``postMessage`` (which takes
# them FOR UPDATE): a message posted meanwhile is either copied or refused as CONFLICT, never
# left behind in v1. In id order, so that concurrent batches cannot deadlock.
HOLD_V1 = text(
    "SELECT 1 FROM chat_conversations WHERE id = ANY(CAST(:v1 AS uuid[])) ORDER BY id FOR SHARE"
)

@dataclass(frozen=True)
class Claim:
    tracking: Row
    already_migrated: bool


async def claim(db: Db, v1_id: UUID) -> Claim | None:
    """Own the tracking row of ``v1_id`` for this transaction (waits for concurrent owners).

    None when the row vanished meanwhile (the v1 conversation was deleted concurrently).
    """
    rows = await db.rows(CLAIM, {"v1": v1_id})
    if rows:
        return Claim(tracking=rows[0], already_migrated=False)
    locked = await db.rows(LOCK, {"v1": v1_id})
    if not locked:
        return None
    row = locked[0]
    return Claim(tracking=row, already_migrated=row["migration_status"] == "completed")


async def copy_claimed(
    db: Db, claimed: Sequence[tuple[UUID, UUID]], *, project_id: UUID | None = None
) -> tuple[int, int]:
    """Copy the conversations whose tracking rows this transaction claimed, given as
    ``(tracking id, v1 id)`` pairs, each into a new draft project (or all into ``project_id``);
    returns (conversations, messages) copied."""
    if not claimed:
        return 0, 0
    await db.execute(CUSTOM_PLAN)
    await db.execute(HOLD_V1, {"v1": [v1 for _, v1 in claimed]})
    row = (
        await db.execute(
            COPY,
            {
                "tracking": [tracking for tracking, _ in claimed],
                "v1": [v1 for _, v1 in claimed],
                "v2": [uuid.uuid4() for _ in claimed],
                "projects": [project_id or uuid.uuid4() for _ in claimed],
                "new_project": [project_id is None for _ in claimed],
                "channel": CHANNEL,
            },
        )
    ).mappings().one()
    conversations, messages = int(row["conversations"]), int(row["messages"])
    if conversations != len(claimed):  # a claimed conversation vanished: roll back
        raise RuntimeError(f"copied {conversations} of {len(claimed)} claimed conversations")
    return conversations, messages


async def copy(db: Db, *, v1_id: UUID, tracking_id: UUID, project_id: UUID | None) -> Row:
    """Copy one claimed conversation (the batch statement with a batch of one) and return
    its completed tracking row."""
    await copy_claimed(db, [(tracking_id, v1_id)], project_id=project_id)
    return await tracking_row(db, tracking_id)


async def tracking_row(db: Db, tracking_id: UUID) -> Row:
    return (await db.rows(TRACKING, {"id": tracking_id}))[0]


async def lock_for_revert(db: Db, *, v1_id: UUID | None, v2_id: UUID | None) -> Row | None:
    column, value = ("v1_conversation_id", v1_id) if v1_id else ("v2_conversation_id", v2_id)
    rows = await db.rows(
        text(f"SELECT * FROM migration_tracking WHERE {column} = :id FOR UPDATE"), {"id": value}
    )
    return rows[0] if rows else None


REVERT = [
    "DELETE FROM v2_conversations WHERE id = :v2",
    # The project goes too when this migration created it and it holds nothing else.
    "DELETE FROM v2_projects p WHERE p.id = :project "
    "AND p.metadata->>'migration_id' = CAST(:tracking AS text) "
    "AND NOT EXISTS (SELECT 1 FROM v2_conversations c WHERE c.project_id = p.id) "
    "AND NOT EXISTS (SELECT 1 FROM v2_project_documents d WHERE d.project_id = p.id)",
]
MARK_REVERTED = text(
    "UPDATE migration_tracking SET migration_status = 'reverted', reverted_at = now(), "
    "v2_conversation_id = NULL, v2_project_id = NULL WHERE id = :tracking RETURNING *"
)


async def revert(db: Db, tracking: Row) -> Row:
    params = {
        "v2": tracking["v2_conversation_id"],
        "project": tracking["v2_project_id"],
        "tracking": str(tracking["id"]),
    }
    for statement in REVERT:
        await db.execute(text(statement), params)
    return (await db.rows(MARK_REVERTED, {"tracking": tracking["id"]}))[0]
