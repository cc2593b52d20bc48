"""The analytics event of a message, written by the message's own statement (DESIGN §9).

``analytics.chat_events`` has no insert policy for users (seed 000): the gateway wrote each
event as the service role, switching the transaction's role there and back (two more round
trips per ``postMessage``). ``mwplu_private.record_chat_event`` writes the event and the
idempotency key's first result instead, as its owner, and only for a conversation of the caller
(``request.jwt.claims``' ``sub``) or for the service role, so the insert statement of the
message calls it directly. ``mwplu_private`` is not a schema PostgREST exposes; only
``authenticated`` and ``service_role`` may use it.

The role that runs this migration owns the function: it must be able to insert into
``analytics.chat_events`` and ``mwplu_idempotency_keys`` (the database owner can).

Revision ID: 0010_event_function
Revises: 0009_realtime
"""

from __future__ import annotations

from gateway.db.migrations.ddl import run

revision = "0010_event_function"
down_revision = "0009_realtime"
branch_labels = None
depends_on = None

SIGNATURE = (
    "mwplu_private.record_chat_event(text, uuid, uuid, uuid, uuid, text, integer, numeric, "
    "uuid, text)"
)

UPGRADE = [
    "CREATE SCHEMA mwplu_private",
    "REVOKE ALL ON SCHEMA mwplu_private FROM PUBLIC",
    "GRANT USAGE ON SCHEMA mwplu_private TO authenticated, service_role",
    """
CREATE FUNCTION mwplu_private.record_chat_event(
  p_source text, p_conversation uuid, p_message uuid, p_user uuid, p_document uuid,
  p_model text, p_tokens integer, p_cost numeric, p_key_owner uuid, p_key text
) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  claims jsonb := coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}');
  caller text := claims->>'sub';
  event_id uuid;
BEGIN
  IF p_source IS NULL OR p_source NOT IN ('v1', 'v2') THEN
    RAISE EXCEPTION 'unknown source %', p_source USING ERRCODE = '22023';
  END IF;
  IF coalesce(claims->>'role', '') <> 'service_role' AND (
      caller IS NULL
      OR (p_key IS NOT NULL AND p_key_owner::text IS DISTINCT FROM caller)
      OR NOT EXISTS (
        SELECT 1 FROM public.v2_conversations c
        WHERE p_source = 'v2' AND c.id = p_conversation AND c.user_id::text = caller
        UNION ALL
        SELECT 1 FROM public.chat_conversations c
        WHERE p_source = 'v1' AND c.id = p_conversation AND c.user_id::text = caller)) THEN
    RAISE EXCEPTION 'an event of a conversation the caller does not own'
      USING ERRCODE = '42501';
  END IF;
  INSERT INTO analytics.chat_events (conversation_id, message_id, document_id, user_id,
    model_name, tokens_total, cost_total, metadata)
  VALUES (p_conversation, p_message, p_document, p_user, p_model, p_tokens, p_cost,
    jsonb_build_object('source', p_source))
  RETURNING id INTO event_id;
  IF p_key IS NOT NULL THEN
    -- only an expired key can be here: a live one was found under the conversation's lock
    INSERT INTO public.mwplu_idempotency_keys
      (owner, conversation_id, key, source, message_id, event_id)
    VALUES (p_key_owner, p_conversation, p_key, p_source, p_message, event_id)
    ON CONFLICT (owner, conversation_id, key) DO UPDATE SET source = EXCLUDED.source,
      message_id = EXCLUDED.message_id, event_id = EXCLUDED.event_id, created_at = now();
  END IF;
  RETURN event_id;
END $$
""",
    f"REVOKE EXECUTE ON FUNCTION {SIGNATURE} FROM PUBLIC",
    f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO authenticated, service_role",
]

DOWNGRADE = [
    f"DROP FUNCTION IF EXISTS {SIGNATURE}",
    "DROP SCHEMA IF EXISTS mwplu_private",
]


def upgrade() -> None:
    run(UPGRADE)


def downgrade() -> None:
    run(DOWNGRADE)
