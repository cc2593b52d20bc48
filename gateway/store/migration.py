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

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import text

from gateway.db import Db
from gateway.store import Row

CLAIM = text(
    "INSERT INTO migration_tracking (v1_conversation_id, migration_status, migrated_at) "
    "VALUES (:v1, 'pending', now()) ON CONFLICT (v1_conversation_id) DO NOTHING RETURNING *"
)
LOCK = text("SELECT * FROM migration_tracking WHERE v1_conversation_id = :v1 FOR UPDATE")

CREATE_PROJECT = text(
    "INSERT INTO v2_projects (user_id, status, metadata, created_at) "
    "SELECT c.user_id, 'draft', jsonb_build_object('migrated_from_v1', true, "
    "'migration_id', CAST(:tracking AS text)), now() "
    "FROM chat_conversations c WHERE c.id = :v1 RETURNING id"
)

COPY_CONVERSATION = text(
    """
    INSERT INTO v2_conversations (user_id, project_id, conversation_type, title, is_active,
      last_message_at, message_count, document_count, created_at, updated_at)
    SELECT c.user_id, :project, 'address_analysis',
      coalesce(d.title, (SELECT left(m.message, 80) FROM chat_messages m
                         WHERE m.conversation_id = c.id AND m.role = 'user'
                         ORDER BY m.created_at, m.id LIMIT 1)),
      c.is_active,
      coalesce((SELECT max(m.created_at) FROM chat_messages m WHERE m.conversation_id = c.id),
               c.last_message_at),
      (SELECT count(*) FROM chat_messages m WHERE m.conversation_id = c.id),
      (c.document_id IS NOT NULL)::int,
      c.created_at, now()
    FROM chat_conversations c LEFT JOIN documents d ON d.id = c.document_id
    WHERE c.id = :v1
    RETURNING id
    """
)

# One statement: new ids are drawn first, so reply_to_message_id is remapped to the copy's
# ids (the seed function copied v1 ids into a column that references v2_messages).
COPY_MESSAGES = text(
    """
    WITH src AS (
      SELECT m.*, gen_random_uuid() AS new_id FROM chat_messages m WHERE m.conversation_id = :v1
    )
    INSERT INTO v2_messages (id, conversation_id, user_id, role, message, referenced_documents,
      conversation_turn, reply_to_message_id, metadata, created_at)
    SELECT s.new_id, :v2, s.user_id, s.role, s.message,
      CASE WHEN s.document_id IS NULL THEN ARRAY[]::uuid[] ELSE ARRAY[s.document_id] END,
      s.conversation_turn, r.new_id,
      coalesce(s.metadata, '{}'::jsonb) || '{"migrated_from_v1": true}'::jsonb,
      s.created_at
    FROM src s LEFT JOIN src r ON r.id = s.reply_to_message_id
    ORDER BY s.created_at, s.id
    """
)

LINK_DOCUMENT = text(
    "INSERT INTO v2_conversation_documents (conversation_id, document_id, added_by, "
    "relevance_score, added_at) "
    "SELECT :v2, c.document_id, 'migration', 1.0, c.created_at FROM chat_conversations c "
    "WHERE c.id = :v1 AND c.document_id IS NOT NULL"
)

COMPLETE = text(
    "UPDATE migration_tracking SET v2_conversation_id = :v2, v2_project_id = :project, "
    "migration_status = 'completed', migrated_at = now(), error_message = NULL, "
    "reverted_at = NULL WHERE id = :tracking RETURNING *"
)


@dataclass(frozen=True)
class Claim:
    tracking: Row
    already_migrated: bool


async def claim(db: Db, v1_id: UUID) -> Claim:
    """Own the tracking row of ``v1_id`` for this transaction (waits for concurrent owners)."""
    rows = await db.rows(CLAIM, {"v1": v1_id})
    if rows:
        return Claim(tracking=rows[0], already_migrated=False)
    row = (await db.rows(LOCK, {"v1": v1_id}))[0]
    return Claim(tracking=row, already_migrated=row["migration_status"] == "completed")


async def copy(db: Db, *, v1_id: UUID, tracking_id: UUID, project_id: UUID | None) -> Row:
    """Copy the conversation, its messages and document link; complete the tracking row."""
    if project_id is None:
        project_id = await db.scalar(CREATE_PROJECT, {"v1": v1_id, "tracking": str(tracking_id)})
    v2_id = await db.scalar(COPY_CONVERSATION, {"v1": v1_id, "project": project_id})
    await db.execute(COPY_MESSAGES, {"v1": v1_id, "v2": v2_id})
    await db.execute(LINK_DOCUMENT, {"v1": v1_id, "v2": v2_id})
    return (await db.rows(COMPLETE, {"v2": v2_id, "project": project_id, "tracking": tracking_id}))[0]


async def conversation_owner(db: Db, v1_id: UUID) -> UUID | None:
    """The owner of a v1 conversation the current role can see (None when invisible)."""
    value = await db.scalar(
        text("SELECT user_id FROM chat_conversations WHERE id = :id"), {"id": v1_id}
    )
    return value if isinstance(value, UUID) else None


async def v2_conversation_owner(db: Db, v2_id: UUID) -> UUID | None:
    value = await db.scalar(
        text("SELECT user_id FROM v2_conversations WHERE id = :id"), {"id": v2_id}
    )
    return value if isinstance(value, UUID) else None


async def project_owner(db: Db, project_id: UUID) -> UUID | None:
    value = await db.scalar(
        text("SELECT user_id FROM v2_projects WHERE id = :id"), {"id": project_id}
    )
    return value if isinstance(value, UUID) else None


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
