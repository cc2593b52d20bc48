"""v2 project-centred tables: exactly the seed's six tables, timestamps as timestamptz.

The seed's indexes, plus the listing indexes the graph's keyset pagination uses. RLS is the
seed's pattern; the two link tables are visible and writable exactly when their parent is.

Revision ID: 0004_v2
Revises: 0003_v1
"""

from __future__ import annotations

from alembic import op

from gateway.db.migrations.ddl import child_policies, enable_rls, owner_policies, run, script

revision = "0004_v2"
down_revision = "0003_v1"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE v2_projects (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,
  name TEXT,
  description TEXT,
  project_type TEXT CHECK (project_type IN (
    'construction', 'extension', 'renovation', 'amenagement', 'lotissement', 'other'
  )),
  main_address TEXT,
  main_city_id UUID REFERENCES cities(id),
  main_zone_id UUID REFERENCES zones(id),
  geo_lon DECIMAL(10, 7),
  geo_lat DECIMAL(10, 7),
  color TEXT DEFAULT '#6B7280',
  icon TEXT DEFAULT '📁',
  starred BOOLEAN DEFAULT false,
  position INTEGER,
  status TEXT DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'completed', 'archived')),
  plu_alert_enabled BOOLEAN DEFAULT false,
  plu_last_check_at TIMESTAMPTZ,
  plu_check_frequency TEXT DEFAULT 'monthly' CHECK (
    plu_check_frequency IN ('daily', 'weekly', 'monthly')
  ),
  created_at TIMESTAMPTZ DEFAULT NOW(),
  updated_at TIMESTAMPTZ DEFAULT NOW(),
  first_edited_at TIMESTAMPTZ,
  metadata JSONB
);
CREATE INDEX idx_v2_projects_user ON v2_projects(user_id);
CREATE INDEX idx_v2_projects_status ON v2_projects(user_id, status);
CREATE INDEX idx_v2_projects_starred ON v2_projects(user_id, starred) WHERE starred = true;
CREATE INDEX idx_v2_projects_active ON v2_projects(user_id) WHERE status IN ('draft', 'active');
CREATE INDEX idx_v2_projects_listing ON v2_projects(created_at DESC, id DESC);

CREATE TABLE v2_conversations (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,
  project_id UUID NOT NULL REFERENCES v2_projects(id) ON DELETE CASCADE,
  conversation_type TEXT DEFAULT 'address_analysis' CHECK (
    conversation_type IN ('address_analysis', 'multi_zone', 'general')
  ),
  title TEXT,
  context_metadata JSONB,
  is_active BOOLEAN DEFAULT true,
  archived_at TIMESTAMPTZ,
  last_message_at TIMESTAMPTZ DEFAULT NOW(),
  message_count INTEGER DEFAULT 0,
  document_count INTEGER DEFAULT 0,
  created_at TIMESTAMPTZ DEFAULT NOW(),
  updated_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX idx_v2_conv_user ON v2_conversations(user_id);
CREATE INDEX idx_v2_conv_project ON v2_conversations(project_id);
CREATE INDEX idx_v2_conv_active ON v2_conversations(user_id, is_active) WHERE is_active = true;
CREATE INDEX idx_v2_conv_last_message ON v2_conversations(user_id, last_message_at DESC);
CREATE INDEX idx_v2_conv_listing ON v2_conversations(last_message_at DESC NULLS LAST, id DESC);
CREATE INDEX idx_v2_conv_project_listing
  ON v2_conversations(project_id, last_message_at DESC NULLS LAST, id DESC);

CREATE TABLE v2_messages (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  conversation_id UUID NOT NULL REFERENCES v2_conversations(id) ON DELETE CASCADE,
  user_id UUID NOT NULL REFERENCES auth.users(id),
  role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
  message TEXT NOT NULL,
  message_type TEXT CHECK (message_type IN (
    'text', 'address_search', 'document_summary', 'comparison', 'clarification'
  )),
  referenced_documents UUID[],
  referenced_zones UUID[],
  referenced_cities UUID[],
  search_context JSONB,
  intent_detected TEXT,
  confidence_score DECIMAL(3,2),
  ai_model_used TEXT,
  conversation_turn INTEGER,
  reply_to_message_id UUID REFERENCES v2_messages(id),
  metadata JSONB,
  created_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX idx_v2_msg_conversation ON v2_messages(conversation_id, created_at);
CREATE INDEX idx_v2_msg_user ON v2_messages(user_id);
CREATE INDEX idx_v2_msg_documents ON v2_messages USING GIN(referenced_documents);
CREATE INDEX idx_v2_msg_turn ON v2_messages(conversation_id, conversation_turn);

CREATE TABLE v2_conversation_documents (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  conversation_id UUID NOT NULL REFERENCES v2_conversations(id) ON DELETE CASCADE,
  document_id UUID NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
  added_at TIMESTAMPTZ DEFAULT NOW(),
  added_by TEXT DEFAULT 'user' CHECK (added_by IN (
    'user', 'ai_auto', 'ai_suggested', 'address_search', 'migration'
  )),
  relevance_score DECIMAL(3,2),
  usage_count INTEGER DEFAULT 0,
  last_referenced_at TIMESTAMPTZ,
  trigger_context JSONB,
  UNIQUE(conversation_id, document_id)
);
CREATE INDEX idx_v2_conv_docs_conversation ON v2_conversation_documents(conversation_id);
CREATE INDEX idx_v2_conv_docs_document ON v2_conversation_documents(document_id);
CREATE INDEX idx_v2_conv_docs_relevance
  ON v2_conversation_documents(conversation_id, relevance_score DESC);

CREATE TABLE v2_project_documents (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id UUID NOT NULL REFERENCES v2_projects(id) ON DELETE CASCADE,
  document_id UUID NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
  pinned BOOLEAN DEFAULT false,
  added_at TIMESTAMPTZ DEFAULT NOW(),
  notes TEXT,
  UNIQUE(project_id, document_id)
);
CREATE INDEX idx_v2_proj_docs_project ON v2_project_documents(project_id);
CREATE INDEX idx_v2_proj_docs_pinned ON v2_project_documents(project_id, pinned)
  WHERE pinned = true;

CREATE TABLE v2_research_history (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,
  conversation_id UUID REFERENCES v2_conversations(id) ON DELETE SET NULL,
  message_id UUID REFERENCES v2_messages(id) ON DELETE SET NULL,
  project_id UUID REFERENCES v2_projects(id) ON DELETE SET NULL,
  address_input TEXT NOT NULL,
  search_intent TEXT,
  geocoded_address TEXT,
  city_id UUID REFERENCES cities(id),
  zone_id UUID REFERENCES zones(id),
  geo_lon DECIMAL(10, 7),
  geo_lat DECIMAL(10, 7),
  documents_found UUID[],
  success BOOLEAN DEFAULT true,
  error_reason TEXT,
  created_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX idx_v2_research_user ON v2_research_history(user_id, created_at DESC);
CREATE INDEX idx_v2_research_conversation ON v2_research_history(conversation_id);
CREATE INDEX idx_v2_research_project ON v2_research_history(project_id);
"""

OWNED = {
    "v2_projects": "projects",
    "v2_conversations": "conversations",
    "v2_messages": "messages",
    "v2_research_history": "research",
}
LINKS = {
    "v2_conversation_documents": ("conversation documents", "v2_conversations", "conversation_id"),
    "v2_project_documents": ("project documents", "v2_projects", "project_id"),
}
DROP_ORDER = [
    "v2_research_history",
    "v2_project_documents",
    "v2_conversation_documents",
    "v2_messages",
    "v2_conversations",
    "v2_projects",
]


def upgrade() -> None:
    run(script(TABLES))
    for table, noun in OWNED.items():
        enable_rls(table, owner_policies(table, noun))
    for table, (noun, parent, fk) in LINKS.items():
        enable_rls(table, child_policies(table, noun, parent, fk))
    tables = ", ".join(DROP_ORDER)
    run(
        [
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO authenticated, service_role",
        ]
    )


def downgrade() -> None:
    for table in DROP_ORDER:
        op.execute(f"DROP TABLE {table}")
