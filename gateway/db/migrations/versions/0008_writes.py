"""The write path (DESIGN §9): the first result of ``postMessage`` per viewer, conversation and
``idempotencyKey``, kept 24 hours (the gateway's own table), and the service role's right to
write v1 rows where the gateway created the v1 tables.

v1 tables have no write policy: the gateway checks the viewer's rights and writes v1 rows as
``service_role``. Supabase grants that role every table of ``public`` already; a v1 table the
gateway did not create is left exactly as it is (v1 gets no new column, trigger or policy).

Revision ID: 0008_writes
Revises: 0007_feature_flags
"""

from __future__ import annotations

from alembic import op

from gateway.db.migrations.ddl import create_table_if_absent, drop_owned_tables, owned

revision = "0008_writes"
down_revision = "0007_feature_flags"
branch_labels = None
depends_on = None

KEYS = [
    "CREATE TABLE public.mwplu_idempotency_keys ("
    # the viewer: auth.uid(), or the nil uuid for a service token without a subject
    " owner uuid NOT NULL,"
    " conversation_id uuid NOT NULL,"
    " key text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),"
    " source text NOT NULL CHECK (source IN ('v1', 'v2')),"
    " message_id uuid NOT NULL,"
    " event_id uuid NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (owner, conversation_id, key))",
    "CREATE INDEX idx_mwplu_idempotency_created ON public.mwplu_idempotency_keys (created_at)",
    "ALTER TABLE public.mwplu_idempotency_keys ENABLE ROW LEVEL SECURITY",
    'CREATE POLICY "Users can view own keys" ON public.mwplu_idempotency_keys FOR SELECT '
    "USING (auth.uid() = owner)",
    'CREATE POLICY "Users can record own keys" ON public.mwplu_idempotency_keys FOR INSERT '
    "WITH CHECK (auth.uid() = owner)",
    'CREATE POLICY "Users can renew own keys" ON public.mwplu_idempotency_keys FOR UPDATE '
    "USING (auth.uid() = owner)",
    "GRANT SELECT, INSERT, UPDATE ON public.mwplu_idempotency_keys TO authenticated",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON public.mwplu_idempotency_keys TO service_role",
]


V1_WRITTEN = ("public.chat_conversations", "public.chat_messages")


def upgrade() -> None:
    create_table_if_absent("public.mwplu_idempotency_keys", KEYS)
    for table in V1_WRITTEN:
        if owned(table):
            op.execute(f"GRANT INSERT, UPDATE ON {table} TO service_role")


def downgrade() -> None:
    for table in V1_WRITTEN:
        if owned(table):
            op.execute(f"REVOKE INSERT, UPDATE ON {table} FROM service_role")
    drop_owned_tables(["public.mwplu_idempotency_keys"])
