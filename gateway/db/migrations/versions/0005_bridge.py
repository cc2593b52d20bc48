"""Migration bridge: the seed's migration_tracking, plus the `reverted` status.

A revert keeps the row (status `reverted`, `reverted_at` set, v2 ids NULL); migrating again
reuses it. The v1 foreign key is ON DELETE SET NULL so that the bridge never blocks the v1
application from deleting a conversation: a completed row whose v1 id went NULL is how
verification finds a v2 copy whose original disappeared.

Revision ID: 0005_bridge
Revises: 0004_v2
"""

from __future__ import annotations

from alembic import op

from gateway.db.migrations.ddl import run, script

revision = "0005_bridge"
down_revision = "0004_v2"
branch_labels = None
depends_on = None

TABLE = """
CREATE TABLE migration_tracking (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  v1_conversation_id UUID REFERENCES chat_conversations(id) ON DELETE SET NULL,
  v2_conversation_id UUID REFERENCES v2_conversations(id) ON DELETE SET NULL,
  v2_project_id UUID REFERENCES v2_projects(id) ON DELETE SET NULL,
  migrated_at TIMESTAMPTZ DEFAULT NOW(),
  migration_status TEXT DEFAULT 'completed' CHECK (
    migration_status IN ('pending', 'completed', 'failed', 'reverted')
  ),
  error_message TEXT,
  reverted_at TIMESTAMPTZ,
  UNIQUE(v1_conversation_id)
);
CREATE INDEX idx_migration_tracking_v2_conversation ON migration_tracking(v2_conversation_id);
CREATE INDEX idx_migration_tracking_status ON migration_tracking(migration_status);
ALTER TABLE migration_tracking ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users can view migrations of visible conversations" ON migration_tracking
  FOR SELECT USING (
    EXISTS (SELECT 1 FROM chat_conversations c
            WHERE c.id = migration_tracking.v1_conversation_id)
    OR EXISTS (SELECT 1 FROM v2_conversations c
               WHERE c.id = migration_tracking.v2_conversation_id)
  );
GRANT SELECT ON migration_tracking TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON migration_tracking TO service_role;
"""


def upgrade() -> None:
    run(script(TABLE))


def downgrade() -> None:
    op.execute("DROP TABLE migration_tracking")
