"""Realtime (DESIGN §10): v2 rows written by anyone are announced on the channel
``mwplu_events``, ids only (the subscriber's read decides what it may see).

- an AFTER INSERT trigger on ``v2_messages``: ``{"k": "m", "s": "v2", "id", "c", "u", "at"}``
  (the message, its conversation, the conversation's owner, its creation);
- an AFTER INSERT OR UPDATE OF ``last_message_at`` trigger on ``v2_conversations``:
  ``{"k": "c", "s": "v2", "id", "u", "at"}`` when ``last_message_at`` moved (``at``: the new value,
  so the same move announced twice is recognised).

NOTIFY is transactional: PostgreSQL delivers it at COMMIT, never for a rolled-back write. A
transaction that sets ``mwplu.quiet_messages`` to ``on`` (the migration's copies) announces no
message, only the new conversation's activity.
v1 tables get no trigger: the gateway announces its own v1 writes in their statement, and
polls for the v1 application's.

Revision ID: 0009_realtime
Revises: 0008_writes
"""

from __future__ import annotations

from gateway.db.migrations.ddl import run

revision = "0009_realtime"
down_revision = "0008_writes"
branch_labels = None
depends_on = None

CHANNEL = "mwplu_events"
# A transaction that sets it 'on' (set_config(..., true)) announces no v2 message: the
# migration's copies (gateway.store.migration).
QUIET = "mwplu.quiet_messages"

UPGRADE = [
    f"""
CREATE FUNCTION public.mwplu_announce_v2_message() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- a v1 conversation copied into v2 (nobody can wait for its new id's messages yet) says
  -- nothing per message: its conversation's activity is enough
  IF current_setting('{QUIET}', true) IS DISTINCT FROM 'on' THEN
    PERFORM pg_notify('{CHANNEL}', json_build_object(
      'k', 'm', 's', 'v2', 'id', NEW.id, 'c', NEW.conversation_id, 'u', NEW.user_id,
      'at', NEW.created_at)::text);
  END IF;
  RETURN NULL;
END $$
""",
    f"""
CREATE FUNCTION public.mwplu_announce_v2_activity() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.last_message_at IS NOT NULL AND (TG_OP = 'INSERT'
      OR NEW.last_message_at IS DISTINCT FROM OLD.last_message_at) THEN
    PERFORM pg_notify('{CHANNEL}', json_build_object(
      'k', 'c', 's', 'v2', 'id', NEW.id, 'u', NEW.user_id,
      'at', NEW.last_message_at)::text);
  END IF;
  RETURN NULL;
END $$
""",
    "REVOKE EXECUTE ON FUNCTION public.mwplu_announce_v2_message() FROM PUBLIC",
    "REVOKE EXECUTE ON FUNCTION public.mwplu_announce_v2_activity() FROM PUBLIC",
    "CREATE TRIGGER mwplu_announce_message AFTER INSERT ON public.v2_messages "
    "FOR EACH ROW EXECUTE FUNCTION public.mwplu_announce_v2_message()",
    "CREATE TRIGGER mwplu_announce_activity AFTER INSERT OR UPDATE OF last_message_at "
    "ON public.v2_conversations "
    "FOR EACH ROW EXECUTE FUNCTION public.mwplu_announce_v2_activity()",
]

DOWNGRADE = [
    "DROP TRIGGER IF EXISTS mwplu_announce_activity ON public.v2_conversations",
    "DROP TRIGGER IF EXISTS mwplu_announce_message ON public.v2_messages",
    "DROP FUNCTION IF EXISTS public.mwplu_announce_v2_activity()",
    "DROP FUNCTION IF EXISTS public.mwplu_announce_v2_message()",
]


def upgrade() -> None:
    run(UPGRADE)


def downgrade() -> None:
    run(DOWNGRADE)
