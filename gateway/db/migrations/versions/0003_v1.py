"""v1 chat tables, as production has them: created only when absent, never altered.

RLS follows the seed's pattern (owners read their rows, admins read all); messages are
visible exactly when their conversation is.

Revision ID: 0003_v1
Revises: 0002_shared
"""

from __future__ import annotations

from gateway.db.migrations.ddl import create_table_if_absent, drop_owned_tables, owner_policies

revision = "0003_v1"
down_revision = "0002_shared"
branch_labels = None
depends_on = None

GRANT = "GRANT SELECT ON {t} TO authenticated, service_role"

CONVERSATIONS = [
    "CREATE TABLE chat_conversations ("
    " id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
    " user_id uuid NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,"
    " document_id uuid REFERENCES documents(id),"
    " is_active boolean DEFAULT true,"
    " last_message_at timestamptz,"
    " created_at timestamptz DEFAULT now())",
    "CREATE INDEX idx_chat_conversations_user ON chat_conversations (user_id)",
    "CREATE INDEX idx_chat_conversations_last_message ON chat_conversations "
    "(last_message_at DESC NULLS LAST, id DESC)",
    "CREATE INDEX idx_chat_conversations_document ON chat_conversations (document_id)",
    "ALTER TABLE chat_conversations ENABLE ROW LEVEL SECURITY",
    *owner_policies("chat_conversations", "conversations", writable=False),
    GRANT.format(t="chat_conversations"),
]

MESSAGES = [
    "CREATE TABLE chat_messages ("
    " id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
    " conversation_id uuid NOT NULL REFERENCES chat_conversations(id) ON DELETE CASCADE,"
    " user_id uuid NOT NULL,"
    " role text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),"
    " message text NOT NULL,"
    " document_id uuid REFERENCES documents(id),"
    " conversation_turn integer,"
    " reply_to_message_id uuid REFERENCES chat_messages(id),"
    " metadata jsonb,"
    " created_at timestamptz DEFAULT now())",
    "CREATE INDEX idx_chat_messages_conversation ON chat_messages "
    "(conversation_id, created_at, id)",
    "CREATE INDEX idx_chat_messages_user ON chat_messages (user_id)",
    "ALTER TABLE chat_messages ENABLE ROW LEVEL SECURITY",
    'CREATE POLICY "Users can view messages of visible conversations" ON chat_messages '
    "FOR SELECT USING (EXISTS (SELECT 1 FROM chat_conversations c "
    "WHERE c.id = chat_messages.conversation_id))",
    GRANT.format(t="chat_messages"),
]

RESEARCH = [
    "CREATE TABLE research_history ("
    " id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
    " user_id uuid REFERENCES auth.users(id) ON DELETE CASCADE,"
    " address_input text,"
    " city_id uuid REFERENCES cities(id),"
    " zone_id uuid REFERENCES zones(id),"
    " created_at timestamptz DEFAULT now())",
    "CREATE INDEX idx_research_history_user ON research_history (user_id, created_at DESC)",
    "ALTER TABLE research_history ENABLE ROW LEVEL SECURITY",
    *owner_policies("research_history", "research", writable=False),
    GRANT.format(t="research_history"),
]


def upgrade() -> None:
    create_table_if_absent("public.chat_conversations", CONVERSATIONS)
    create_table_if_absent("public.chat_messages", MESSAGES)
    create_table_if_absent("public.research_history", RESEARCH)


def downgrade() -> None:
    drop_owned_tables(
        ["public.research_history", "public.chat_messages", "public.chat_conversations"]
    )
