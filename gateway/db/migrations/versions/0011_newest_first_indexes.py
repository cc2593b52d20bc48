"""Indexes in the order the newest-first listings read: ``created_at DESC NULLS LAST, id DESC``.

``projects``, the analytics ``chatEvents`` and the viewer's ``researchHistory`` (both stores)
list newest first with the rows without an instant last
(``gateway.store.keyset.keyset_parts``). Their indexes (the seed's, revisions 0003, 0004
and 0006) sort ``created_at DESC``, where NULLs come first, and without the id: PostgreSQL could
not read a page from them and sorted every row of the listing for each page
(``projects(first: 20)`` over 5,000 projects, 1.0 ms of its CPU; ``chatEvents(first: 20)`` over
a million events, a scan of all of them). These give each listing its order, alone or after its
equality filter (the owner, the source), so that a page reads its rows and stops.

Built on v2's tables (revision 0004 creates them outright), and on the others only where the
gateway created them (they carry its mark), as every revision treats production's tables: a
database that had ``research_history`` or ``analytics.chat_events`` before the gateway keeps
them as they are (its operator may add the same indexes; the README lists them). Each index
built carries the mark, and the downgrade drops only marked ones. The earlier indexes stay:
they serve ``created_at DESC`` (NULLs first), the order other clients of these tables ask for
(PostgREST's and PostGraphile's ``created_at`` descending).

Built ``CONCURRENTLY``, outside the revision's transaction: writers of a large table are not
held up. A build that failed leaves an invalid index, dropped before the build is tried again.

Revision ID: 0011_newest_first_indexes
Revises: 0010_event_function
"""

from __future__ import annotations

from alembic import op

from gateway.db.migrations.ddl import MARK, exists, owned, scalar

revision = "0011_newest_first_indexes"
down_revision = "0010_event_function"
branch_labels = None
depends_on = None

NEWEST = "created_at DESC NULLS LAST, id DESC"

# (schema, table, index, its columns); v2's tables are the gateway's whoever created them
INDEXES = [
    ("public", "v2_projects", "idx_v2_projects_newest", NEWEST),
    ("analytics", "chat_events", "idx_chat_events_newest", NEWEST),
    ("analytics", "chat_events", "idx_chat_events_user_newest", f"user_id, {NEWEST}"),
    ("analytics", "chat_events", "idx_chat_events_source_newest",
     f"(metadata->>'source'), {NEWEST}"),
    ("public", "research_history", "idx_research_history_user_newest", f"user_id, {NEWEST}"),
    ("public", "v2_research_history", "idx_v2_research_user_newest", f"user_id, {NEWEST}"),
]


def ours(schema: str, table: str) -> bool:
    """Whether the gateway may index ``table``: one of v2's, or one it created."""
    name = f"{schema}.{table}"
    return exists(name) and (name.startswith("public.v2_") or owned(name))


def index_state(schema: str, name: str) -> str | None:
    """'valid', 'invalid' (a build that failed) or None (absent)."""
    state = scalar(
        "SELECT CASE WHEN i.indisvalid THEN 'valid' ELSE 'invalid' END FROM pg_index i "
        "WHERE i.indexrelid = to_regclass(:n)",
        n=f"{schema}.{name}",
    )
    return None if state is None else str(state)


def build(schema: str, table: str, name: str, columns: str) -> bool:
    """``name`` on ``table``, built without holding up its writers (in autocommit); False
    when a valid index of that name was there already (not ours to mark)."""
    state = index_state(schema, name)
    if state == "valid":
        return False
    with op.get_context().autocommit_block():
        if state == "invalid":
            op.execute(f"DROP INDEX CONCURRENTLY {schema}.{name}")
        op.execute(f"CREATE INDEX CONCURRENTLY {name} ON {schema}.{table} ({columns})")
    return True


def upgrade() -> None:
    for schema, table, name, columns in INDEXES:
        if ours(schema, table):
            if build(schema, table, name, columns):
                op.execute(f"COMMENT ON INDEX {schema}.{name} IS '{MARK}'")


def downgrade() -> None:
    for schema, _table, name, _columns in reversed(INDEXES):
        if owned(f"{schema}.{name}"):
            with op.get_context().autocommit_block():
                op.execute(f"DROP INDEX CONCURRENTLY {schema}.{name}")
