"""Writes to conversations and messages of both stores, and the analytics event of each
message (seed 000's "analytics integration": ``metadata.source`` is the store written).

Posting into a conversation first locks its row (``lock_v1`` / ``lock_v2``): concurrent posts
into one conversation then run one after the other, so each sees the last one's turn, and the
stored ``message_count`` and ``last_message_at`` stay equal to the live values. The caller
decides as whom each statement runs (v1 tables have no write policy: the service role, after
the caller checked ownership).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson

from gateway.db import Db

NIL = UUID(int=0)
STORE_TABLES = {"v1": ("chat_conversations", "chat_messages"),
                "v2": ("v2_conversations", "v2_messages")}
# Where writes are announced for subscriptions (gateway.realtime listens; revision
# 0009_realtime's triggers use the same name).
CHANNEL = "mwplu_events"


async def lock(db: Db, source: str, conversation_id: UUID) -> UUID | None:
    """Lock the conversation for a post; its owner (None: no row the caller may change).

    What the post depends on (an earlier post's idempotency key, a completed migration) is read
    by ``insert_message``, the next statement: a statement that waited for this lock still
    reads with the snapshot it began with, which would miss what the previous holder wrote."""
    table = STORE_TABLES[source][0]
    rows = await db.fetch(
        f"SELECT user_id FROM {table} WHERE id = CAST(:id AS uuid) FOR UPDATE",
        {"id": conversation_id},
    )
    return UUID(str(rows[0][0])) if rows else None


@dataclass(frozen=True)
class NewMessage:
    conversation_id: UUID
    user_id: UUID  # the conversation's owner (the message's author for USER messages)
    role: str  # stored value: user, assistant, system
    text: str
    documents: tuple[UUID, ...] = ()
    reply_to: UUID | None = None
    message_type: str | None = None
    model: str | None = None
    metadata: dict[str, Any] | None = None
    # its analytics event's
    tokens_total: int | None = None
    cost_total: Any = None  # Decimal | None


_V2_INSERT = """
WITH {checks}, turn AS (
  SELECT coalesce(max(conversation_turn), 0) + 1 AS n FROM v2_messages
  WHERE conversation_id = CAST(:conversation AS uuid)
), m AS (
  INSERT INTO v2_messages (conversation_id, user_id, role, message, message_type,
    referenced_documents, ai_model_used, conversation_turn, reply_to_message_id, metadata)
  SELECT CAST(:conversation AS uuid), CAST(:user_id AS uuid), CAST(:role AS text),
    CAST(:text AS text), CAST(:message_type AS text), CAST(:documents AS uuid[]),
    CAST(:model AS text), turn.n, CAST(:reply_to AS uuid), CAST(:metadata AS jsonb)
  FROM turn, checks WHERE {proceed}
  RETURNING id, created_at
), c AS (
  UPDATE v2_conversations SET message_count = coalesce(message_count, 0) + 1,
    last_message_at = greatest(last_message_at, (SELECT created_at FROM m)), updated_at = now()
  WHERE id = CAST(:conversation AS uuid) AND EXISTS (SELECT 1 FROM m)
  RETURNING id
)
SELECT checks.*, (SELECT m.id FROM m), {event} FROM checks
"""

# v1 tables get no trigger (DESIGN §10): a v1 message the gateway writes is announced by its
# own statement, in the shape of v2's trigger (0009_realtime), delivered at COMMIT only.
_V1_ANNOUNCE = (
    "(SELECT pg_notify(CAST(:channel AS text), json_build_object('k', 'm', 's', 'v1', 'id', m.id, "
    "'c', CAST(:conversation AS uuid), 'u', CAST(:user_id AS uuid), 'at', m.created_at)::text) "
    "FROM m)"
)

_V1_INSERT = """
WITH {checks}, turn AS (
  SELECT coalesce(max(conversation_turn), 0) + 1 AS n FROM chat_messages
  WHERE conversation_id = CAST(:conversation AS uuid)
), m AS (
  INSERT INTO chat_messages (conversation_id, user_id, role, message, document_id,
    conversation_turn, reply_to_message_id, metadata)
  SELECT CAST(:conversation AS uuid), CAST(:user_id AS uuid), CAST(:role AS text),
    CAST(:text AS text), (CAST(:documents AS uuid[]))[1], turn.n, CAST(:reply_to AS uuid),
    CAST(:metadata AS jsonb)
  FROM turn, checks WHERE {proceed}
  RETURNING id, created_at
), c AS (
  UPDATE chat_conversations
    SET last_message_at = greatest(last_message_at, (SELECT created_at FROM m))
  WHERE id = CAST(:conversation AS uuid) AND EXISTS (SELECT 1 FROM m)
  RETURNING id
)
SELECT checks.*, (SELECT m.id FROM m), {event}, {announce} FROM checks
"""


_CHECKS = """checks AS (
  SELECT
    (SELECT ARRAY[k.message_id, k.event_id] FROM mwplu_idempotency_keys k
      WHERE k.owner = CAST(:owner AS uuid) AND k.conversation_id = CAST(:conversation AS uuid)
        AND k.key = CAST(:key AS text) AND k.created_at > now() - interval '24 hours') AS first,
    (SELECT r.conversation_id = CAST(:conversation AS uuid) FROM {messages} r
      WHERE r.id = CAST(:reply_to AS uuid)) AS reply_here,
    {migrated} AS migrated_to
)"""
# The message is written only when no earlier post has the key, the conversation was not
# migrated, and a reply's target is in the conversation.
_PROCEED = (
    "checks.first IS NULL AND checks.migrated_to IS NULL "
    "AND (CAST(:reply_to AS uuid) IS NULL OR checks.reply_here)"
)
_MIGRATED = {
    "v1": "(SELECT t.v2_conversation_id FROM migration_tracking t "
    "WHERE t.v1_conversation_id = CAST(:conversation AS uuid) "
    "AND t.migration_status = 'completed')",
    "v2": "CAST(NULL AS uuid)",
}
# The message's analytics event (and the idempotency key's first result), by the statement that
# writes the message: ``mwplu_private.record_chat_event`` (revision 0010_event_function) may
# write them for the caller's own conversation without the transaction switching roles.
_EVENT = (
    "(SELECT mwplu_private.record_chat_event(CAST(:source AS text), "
    "CAST(:conversation AS uuid), m.id, CAST(:user_id AS uuid), (CAST(:documents AS uuid[]))[1], "
    "CAST(:model AS text), CAST(:tokens AS integer), CAST(:cost AS numeric), "
    "CAST(:owner AS uuid), CAST(:key AS text)) FROM m)"
)
_INSERTS = {
    source: sql.format(
        checks=_CHECKS.format(messages=STORE_TABLES[source][1], migrated=_MIGRATED[source]),
        proceed=_PROCEED,
        announce=_V1_ANNOUNCE,
        event=_EVENT,
    )
    for source, sql in (("v1", _V1_INSERT), ("v2", _V2_INSERT))
}


@dataclass(frozen=True)
class Inserted:
    """What ``insert_message`` found and did: the first result of the same idempotency key
    (message id, event id), whether the reply target is in the conversation, for v1 the v2
    copy of a completed migration, and the new message's and its event's ids (None: nothing
    was written)."""

    first: tuple[UUID, UUID] | None
    reply_here: bool | None
    migrated_to: UUID | None
    message_id: UUID | None
    event_id: UUID | None  # the new message's analytics event


async def insert_message(
    db: Db, source: str, message: NewMessage, *, owner: UUID, key: str | None
) -> Inserted:
    """Insert the message at the conversation's next turn, move the conversation's
    ``last_message_at`` (and v2's ``message_count``) and write the message's analytics event
    tagged with ``source``, unless the checks say otherwise; the conversation must be locked
    (``lock``). ``owner`` and ``key``: the idempotency key's."""
    metadata = dict(message.metadata or {})
    if source == "v1":
        # v1 has no columns for these: kept in the message's metadata, not lost
        extra = {"message_type": message.message_type, "ai_model_used": message.model,
                 "referenced_documents": [str(d) for d in message.documents[1:]] or None}
        metadata.update({k: v for k, v in extra.items() if v is not None})
    rows = await db.fetch(
        _INSERTS[source],
        {
            "conversation": message.conversation_id,
            "user_id": message.user_id,
            "role": message.role,
            "text": message.text,
            "documents": list(message.documents),
            "reply_to": message.reply_to,
            "message_type": message.message_type,
            "model": message.model,
            "metadata": orjson.dumps(metadata).decode() if metadata else None,
            "tokens": message.tokens_total,
            "cost": message.cost_total,
            "source": source,
            "owner": owner,
            "key": key,
            "channel": CHANNEL,
        },
    )
    first, reply_here, migrated_to, message_id, event_id = rows[0][:5]
    return Inserted(
        first=(first[0], first[1]) if first else None,
        reply_here=reply_here,
        migrated_to=migrated_to,
        message_id=message_id,
        event_id=event_id,
    )


async def conversation_owner(db: Db, source: str, conversation_id: UUID) -> UUID | None:
    """The owner of a conversation of ``source``'s store the current role can see (None:
    none)."""
    table = STORE_TABLES[source][0]
    rows = await db.fetch(
        f"SELECT user_id FROM {table} WHERE id = CAST(:id AS uuid)", {"id": conversation_id}
    )
    return UUID(str(rows[0][0])) if rows else None


async def create_v2(
    db: Db, *, owner: UUID, project_id: UUID, title: str | None, conversation_type: str | None,
    context_metadata: Any, documents: list[UUID],
) -> UUID:
    """A v2 conversation in ``project_id``, its documents attached (``added_by`` user)."""
    rows = await db.fetch(
        "INSERT INTO v2_conversations (user_id, project_id, title, conversation_type, "
        "context_metadata, document_count) VALUES (CAST(:owner AS uuid), CAST(:project AS uuid), "
        "CAST(:title AS text), coalesce(CAST(:type AS text), 'address_analysis'), "
        "CAST(:context AS jsonb), :count) RETURNING id",
        {
            "owner": owner, "project": project_id, "title": title, "type": conversation_type,
            "context": (
                None if context_metadata is None else orjson.dumps(context_metadata).decode()
            ),
            "count": len(documents),
        },
    )
    conversation_id = UUID(str(rows[0][0]))
    if documents:
        # a statement of its own: the link's policy looks its parent up, which a row inserted
        # by the same statement is not yet
        await db.fetch(
            "INSERT INTO v2_conversation_documents (conversation_id, document_id, added_by) "
            "SELECT CAST(:id AS uuid), doc, 'user' FROM unnest(CAST(:documents AS uuid[])) doc",
            {"id": conversation_id, "documents": documents},
        )
    return conversation_id


async def create_v1(db: Db, *, owner: UUID, document_id: UUID | None) -> UUID:
    """A v1 conversation (as the service role: v1 has no insert policy)."""
    rows = await db.fetch(
        "INSERT INTO chat_conversations (user_id, document_id, last_message_at) "
        "VALUES (CAST(:owner AS uuid), CAST(:document AS uuid), NULL) RETURNING id",
        {"owner": owner, "document": document_id},
    )
    return UUID(str(rows[0][0]))


async def archive(db: Db, source: str, conversation_id: UUID) -> bool:
    """``is_active`` false (v2: ``archived_at`` too, kept from a first archive); whether a row
    the caller may change was there."""
    if source == "v2":
        sql = (
            "UPDATE v2_conversations SET is_active = false, "
            "archived_at = coalesce(archived_at, now()), updated_at = now() "
            "WHERE id = CAST(:id AS uuid) RETURNING id"
        )
    else:
        sql = (
            "UPDATE chat_conversations SET is_active = false "
            "WHERE id = CAST(:id AS uuid) RETURNING id"
        )
    return bool(await db.fetch(sql, {"id": conversation_id}))
