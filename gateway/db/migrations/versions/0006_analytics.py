"""Analytics: analytics.chat_events, where metadata->>'source' is 'v1' or 'v2'.

Created only when absent (production has it, written by both v1 and v2).

Revision ID: 0006_analytics
Revises: 0005_bridge
"""

from __future__ import annotations

from alembic import op

from gateway.db.migrations.ddl import (
    MARK,
    create_table_if_absent,
    drop_owned_tables,
    owner_policies,
    scalar,
)

revision = "0006_analytics"
down_revision = "0005_bridge"
branch_labels = None
depends_on = None

EVENTS = [
    "CREATE TABLE analytics.chat_events ("
    " id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
    " conversation_id uuid, message_id uuid, document_id uuid, user_id uuid,"
    " model_name text, tokens_total integer, cost_total numeric, metadata jsonb,"
    " created_at timestamptz DEFAULT now())",
    "CREATE INDEX idx_chat_events_created ON analytics.chat_events (created_at DESC, id DESC)",
    "CREATE INDEX idx_chat_events_user ON analytics.chat_events (user_id, created_at DESC)",
    "CREATE INDEX idx_chat_events_source ON analytics.chat_events "
    "((metadata->>'source'), created_at DESC)",
    "ALTER TABLE analytics.chat_events ENABLE ROW LEVEL SECURITY",
    *owner_policies("analytics.chat_events", "events", writable=False),
    "GRANT SELECT ON analytics.chat_events TO authenticated, service_role",
    "GRANT INSERT ON analytics.chat_events TO service_role",
]


def upgrade() -> None:
    if scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'analytics'") == 0:
        op.execute("CREATE SCHEMA analytics")
        op.execute(f"COMMENT ON SCHEMA analytics IS '{MARK}'")
    op.execute("GRANT USAGE ON SCHEMA analytics TO authenticated, service_role")
    create_table_if_absent("analytics.chat_events", EVENTS)


def downgrade() -> None:
    drop_owned_tables(["analytics.chat_events"])
    ours = scalar(
        "SELECT obj_description(oid, 'pg_namespace') = :m FROM pg_namespace "
        "WHERE nspname = 'analytics'",
        m=MARK,
    )
    if ours is True:
        op.execute("DROP SCHEMA analytics")
