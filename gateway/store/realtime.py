"""What realtime reads besides the events' own rows (DESIGN §10): the messages a store got
since an instant (v1's poll, v2's catch-up after the listening connection was lost), and
whether the viewer can see a conversation at all (a subscription to one it cannot see is
``NOT_FOUND``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from gateway.db import Db
from gateway.store.chat_writes import STORE_TABLES

# Through the conversations' index on last_message_at (v1's own): a conversation whose
# last_message_at did not move got no message. Oldest first, so that subscribers receive them
# in order; bounded per poll (the next poll goes on from the newest one read).
_SINCE = """
SELECT m.id, m.conversation_id, m.created_at, c.user_id
FROM {conversations} c JOIN {messages} m ON m.conversation_id = c.id
WHERE c.last_message_at > CAST(:since AS timestamptz) AND m.created_at > CAST(:since AS timestamptz)
ORDER BY m.created_at, m.id
LIMIT :limit
"""
SINCE = {
    source: _SINCE.format(conversations=tables[0], messages=tables[1])
    for source, tables in STORE_TABLES.items()
}


async def messages_since(db: Db, source: str, since: datetime, limit: int) -> list[Any]:
    """``(id, conversation_id, created_at, user_id)`` of the messages of ``source`` created
    after ``since`` (as the transaction's role sees them: the poll runs as the service role)."""
    return await db.fetch(SINCE[source], {"since": since, "limit": limit})


# After the LISTEN connection was lost: v2's messages of the conversations being watched, and
# the conversations whose last_message_at moved (both through their indexes).
_V2_MESSAGES = """
SELECT m.id, m.conversation_id, m.created_at, m.user_id FROM v2_messages m
WHERE m.conversation_id = ANY(CAST(:conversations AS uuid[]))
  AND m.created_at > CAST(:since AS timestamptz)
ORDER BY m.created_at, m.id
LIMIT :limit
"""
_V2_MOVED = """
SELECT id, user_id, last_message_at FROM v2_conversations
WHERE last_message_at > CAST(:since AS timestamptz)
ORDER BY last_message_at, id
LIMIT :limit
"""


async def v2_messages_since(
    db: Db, conversations: list[UUID], since: datetime, limit: int
) -> list[Any]:
    """``(id, conversation_id, created_at, user_id)`` of v2 messages of ``conversations``."""
    return await db.fetch(
        _V2_MESSAGES, {"conversations": conversations, "since": since, "limit": limit}
    )


async def v2_moved_since(db: Db, since: datetime, limit: int) -> list[Any]:
    """``(id, user_id, last_message_at)`` of v2 conversations whose activity moved."""
    return await db.fetch(_V2_MOVED, {"since": since, "limit": limit})


async def now(db: Db) -> datetime:
    rows = await db.fetch("SELECT now()")
    value: datetime = rows[0][0]
    return value


async def visible_conversation(db: Db, source: str, conversation_id: UUID) -> UUID | None:
    """The owner of the conversation when the viewer can read it (RLS), else None."""
    rows = await db.fetch(
        f"SELECT user_id FROM {STORE_TABLES[source][0]} WHERE id = CAST(:id AS uuid)",
        {"id": conversation_id},
    )
    return rows[0][0] if rows else None
