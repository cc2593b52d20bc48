"""The Alembic revisions against a real PostgreSQL: the schema they build (DESIGN §2), their
downgrades, and that they create only what is absent and drop only what they created."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest

from gateway.db import migrate
from gateway.db.migrations.ddl import MARK
from tests.conftest import Server, render
from tests.factories import (
    insert,
    make_city,
    make_document,
    make_project,
    make_user,
    make_v1_conversation,
    make_v2_conversation,
    make_zone,
)

GATEWAY_SCHEMAS = ("public", "auth", "analytics")

# Every ordinary table in the schemas the gateway touches, as "schema.table".
TABLES_SQL = """
SELECT n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1::text[])
ORDER BY 1
"""
SCHEMA_EXISTS_SQL = "SELECT count(*) FROM pg_namespace WHERE nspname = $1"
FUNCTION_SQL = "SELECT to_regprocedure($1) IS NOT NULL"

# "name type[ NOT NULL]" per column, in column order.
COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
TIMESTAMP_WITHOUT_TZ_SQL = """
SELECT table_schema || '.' || table_name || '.' || column_name
FROM information_schema.columns
WHERE table_schema = ANY($1::text[]) AND data_type = 'timestamp without time zone'
"""
CHECKED_COLUMNS_SQL = """
SELECT c.conrelid::regclass::text, a.attname
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
WHERE c.contype = 'c' AND c.connamespace = 'public'::regnamespace
"""
UNIQUE_COLUMNS_SQL = """
SELECT array_agg(a.attname::text ORDER BY a.attname)
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
WHERE c.contype = 'u' AND c.conrelid = to_regclass($1)
GROUP BY c.oid
"""
INDEXES_SQL = "SELECT indexname, tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'"
RLS_SQL = "SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass($1)"
POLICIES_SQL = """
SELECT policyname, cmd FROM pg_policies WHERE schemaname = $1 AND tablename = $2
"""
ROLES_SQL = """
SELECT rolname, rolcanlogin, rolinherit, rolbypassrls FROM pg_roles
WHERE rolname IN ('anon', 'authenticated', 'service_role', 'authenticator')
"""
MEMBERSHIPS_SQL = """
SELECT r.rolname FROM pg_auth_members m
JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
WHERE u.rolname = 'authenticator'
"""
TABLE_COMMENT_SQL = "SELECT obj_description(to_regclass($1), 'pg_class')"
TABLE_ACL_SQL = "SELECT relacl::text FROM pg_class WHERE oid = to_regclass($1)"
TABLE_INDEXES_SQL = (
    "SELECT array_agg(indexname ORDER BY indexname) FROM pg_indexes WHERE tablename = $1"
)
ROW_HASH_SQL = "SELECT md5(string_agg(t::text, '' ORDER BY t.id)) FROM {table} AS t"
ROW_COUNT_SQL = "SELECT count(*) FROM {table}"

HEAD = "0011_newest_first_indexes"

# DESIGN §2: shared reference tables, v1, the bridge, analytics ("name type", column order).
SHARED_AND_V1_COLUMNS = {
    "auth.users": ["id uuid", "email text"],
    "public.profiles": [
        "id uuid", "email text", "full_name text", "is_admin boolean",
        "created_at timestamp with time zone",
    ],
    "public.cities": ["id uuid", "name text", "insee_code text"],
    "public.zonings": ["id uuid", "city_id uuid", "name text"],
    "public.zones": ["id uuid", "zoning_id uuid", "city_id uuid", "code text", "label text"],
    "public.typologies": ["id uuid", "name text"],
    "public.documents": [
        "id uuid", "title text", "url text", "city_id uuid", "zoning_id uuid", "zone_id uuid",
        "typology_id uuid", "created_at timestamp with time zone",
    ],
    "public.chat_conversations": [
        "id uuid", "user_id uuid", "document_id uuid", "is_active boolean",
        "last_message_at timestamp with time zone", "created_at timestamp with time zone",
    ],
    "public.chat_messages": [
        "id uuid", "conversation_id uuid", "user_id uuid", "role text", "message text",
        "document_id uuid", "conversation_turn integer", "reply_to_message_id uuid",
        "metadata jsonb", "created_at timestamp with time zone",
    ],
    "public.research_history": [
        "id uuid", "user_id uuid", "address_input text", "city_id uuid", "zone_id uuid",
        "created_at timestamp with time zone",
    ],
    "public.migration_tracking": [
        "id uuid", "v1_conversation_id uuid", "v2_conversation_id uuid", "v2_project_id uuid",
        "migrated_at timestamp with time zone", "migration_status text", "error_message text",
        "reverted_at timestamp with time zone",
    ],
    "analytics.chat_events": [
        "id uuid", "conversation_id uuid", "message_id uuid", "document_id uuid", "user_id uuid",
        "model_name text", "tokens_total integer", "cost_total numeric", "metadata jsonb",
        "created_at timestamp with time zone",
    ],
}

TZ = "timestamp with time zone"
# Seed 000, verbatim except TIMESTAMP -> timestamptz (DESIGN §2): exactly these columns.
V2_COLUMNS = {
    "v2_projects": [
        "id uuid NOT NULL", "user_id uuid NOT NULL", "name text", "description text",
        "project_type text", "main_address text", "main_city_id uuid", "main_zone_id uuid",
        "geo_lon numeric(10,7)", "geo_lat numeric(10,7)", "color text", "icon text",
        "starred boolean", "position integer", "status text", "plu_alert_enabled boolean",
        f"plu_last_check_at {TZ}", "plu_check_frequency text", f"created_at {TZ}",
        f"updated_at {TZ}", f"first_edited_at {TZ}", "metadata jsonb",
    ],
    "v2_conversations": [
        "id uuid NOT NULL", "user_id uuid NOT NULL", "project_id uuid NOT NULL",
        "conversation_type text", "title text", "context_metadata jsonb", "is_active boolean",
        f"archived_at {TZ}", f"last_message_at {TZ}", "message_count integer",
        "document_count integer", f"created_at {TZ}", f"updated_at {TZ}",
    ],
    "v2_messages": [
        "id uuid NOT NULL", "conversation_id uuid NOT NULL", "user_id uuid NOT NULL",
        "role text NOT NULL", "message text NOT NULL", "message_type text",
        "referenced_documents uuid[]", "referenced_zones uuid[]", "referenced_cities uuid[]",
        "search_context jsonb", "intent_detected text", "confidence_score numeric(3,2)",
        "ai_model_used text", "conversation_turn integer", "reply_to_message_id uuid",
        "metadata jsonb", f"created_at {TZ}",
    ],
    "v2_conversation_documents": [
        "id uuid NOT NULL", "conversation_id uuid NOT NULL", "document_id uuid NOT NULL",
        f"added_at {TZ}", "added_by text", "relevance_score numeric(3,2)",
        "usage_count integer", f"last_referenced_at {TZ}", "trigger_context jsonb",
    ],
    "v2_project_documents": [
        "id uuid NOT NULL", "project_id uuid NOT NULL", "document_id uuid NOT NULL",
        "pinned boolean", f"added_at {TZ}", "notes text",
    ],
    "v2_research_history": [
        "id uuid NOT NULL", "user_id uuid NOT NULL", "conversation_id uuid",
        "message_id uuid", "project_id uuid", "address_input text NOT NULL",
        "search_intent text", "geocoded_address text", "city_id uuid", "zone_id uuid",
        "geo_lon numeric(10,7)", "geo_lat numeric(10,7)", "documents_found uuid[]",
        "success boolean", "error_reason text", f"created_at {TZ}",
    ],
}

# The seed's CHECK constraints (plus the bridge's status and v1's role), by column.
CHECKED_COLUMNS = {
    ("v2_projects", "project_type"),
    ("v2_projects", "status"),
    ("v2_projects", "plu_check_frequency"),
    ("v2_conversations", "conversation_type"),
    ("v2_messages", "role"),
    ("v2_messages", "message_type"),
    ("v2_conversation_documents", "added_by"),
    ("migration_tracking", "migration_status"),
    ("chat_messages", "role"),
    ("feature_flags", "key"),  # seed 001
    ("feature_flags", "rollout_percentage"),
    ("mwplu_idempotency_keys", "key"),  # the gateway's own
    ("mwplu_idempotency_keys", "source"),
}

# Seed 000's index names and the table each is on.
SEED_INDEXES = {
    "idx_v2_projects_user": "v2_projects",
    "idx_v2_projects_status": "v2_projects",
    "idx_v2_projects_starred": "v2_projects",
    "idx_v2_projects_active": "v2_projects",
    "idx_v2_conv_user": "v2_conversations",
    "idx_v2_conv_project": "v2_conversations",
    "idx_v2_conv_active": "v2_conversations",
    "idx_v2_conv_last_message": "v2_conversations",
    "idx_v2_msg_conversation": "v2_messages",
    "idx_v2_msg_user": "v2_messages",
    "idx_v2_msg_documents": "v2_messages",
    "idx_v2_msg_turn": "v2_messages",
    "idx_v2_conv_docs_conversation": "v2_conversation_documents",
    "idx_v2_conv_docs_document": "v2_conversation_documents",
    "idx_v2_conv_docs_relevance": "v2_conversation_documents",
    "idx_v2_proj_docs_project": "v2_project_documents",
    "idx_v2_proj_docs_pinned": "v2_project_documents",
    "idx_v2_research_user": "v2_research_history",
    "idx_v2_research_conversation": "v2_research_history",
    "idx_v2_research_project": "v2_research_history",
}

V1_TABLES = ["public.chat_conversations", "public.chat_messages", "public.research_history"]
V2_TABLES = [f"public.{t}" for t in V2_COLUMNS]
RLS_TABLES = [*V1_TABLES, *V2_TABLES, "public.migration_tracking", "analytics.chat_events"]

# The seed's policies on v2_projects, verbatim.
SEED_PROJECT_POLICIES = {
    ("Users can view own projects", "SELECT"),
    ("Users can create own projects", "INSERT"),
    ("Users can update own projects", "UPDATE"),
    ("Users can delete own projects", "DELETE"),
    ("Admins can view all projects", "SELECT"),
}

# v1 and shared tables whose rows a downgrade must leave byte-for-byte unchanged.
PRESERVED_TABLES = [
    "auth.users",
    "profiles",
    "cities",
    "zonings",
    "zones",
    "typologies",
    "documents",
    "chat_conversations",
    "chat_messages",
    "research_history",
]

HAND_MADE_CITIES = (
    "CREATE TABLE public.cities (id uuid PRIMARY KEY, name text NOT NULL, insee_code text, "
    "population integer)"
)


def owner_url(server: Server, db: str) -> str:
    return render(server.database_url(db))


async def gateway_tables(conn: asyncpg.Connection) -> list[str]:
    return [r[0] for r in await conn.fetch(TABLES_SQL, list(GATEWAY_SCHEMAS))]


async def columns(conn: asyncpg.Connection, table: str, *, not_null: bool) -> list[str]:
    rows = await conn.fetch(COLUMNS_SQL, table)
    return [
        f"{name} {type_}{' NOT NULL' if not_null and required else ''}"
        for name, type_, required in rows
    ]


async def row_hashes(conn: asyncpg.Connection) -> dict[str, str | None]:
    return {t: await conn.fetchval(ROW_HASH_SQL.format(table=t)) for t in PRESERVED_TABLES}


async def fill_every_table(conn: asyncpg.Connection) -> None:
    """At least one row in every v1 and shared table, plus v2 and bridge rows pointing at them."""
    user = await make_user(conn, "Camille Martin")
    await make_user(conn, "Admin Dupont", is_admin=True)
    city = await make_city(conn)
    zone = await make_zone(conn, city)
    typology = await insert(conn, "typologies", name="Règlement écrit")
    document = await make_document(conn, city_id=city, zone_id=zone, typology_id=typology)
    v1 = await make_v1_conversation(conn, user, document_id=document, messages=4)
    await make_v1_conversation(conn, user, last=None, messages=0)
    await insert(conn, "research_history", user_id=user, address_input="1 place Bellecour",
                 city_id=city, zone_id=zone)
    project = await make_project(conn, user, name="Extension")
    v2 = await make_v2_conversation(conn, user, project_id=project, messages=3,
                                    document_ids=(document,))
    await insert(conn, "migration_tracking", v1_conversation_id=v1, v2_conversation_id=v2,
                 v2_project_id=project, migration_status="completed")


# --- upgrade / downgrade round trip -----------------------------------------------------------


async def test_upgrade_downgrade_upgrade_round_trip(server: Server, empty_database: str) -> None:
    url = owner_url(server, empty_database)
    conn = await server.connect(empty_database)
    try:
        # given an empty database, when it is upgraded to head
        migrate.upgrade(url)
        # then it is at head with every table of DESIGN §2
        assert await migrate.current_revision(url) == HEAD
        assert set(SHARED_AND_V1_COLUMNS) | set(V2_TABLES) <= set(await gateway_tables(conn))

        # when it is downgraded to base
        migrate.downgrade(url, "base")
        # then no gateway table, schema or function is left (only Alembic's bookkeeping)
        assert await migrate.current_revision(url) is None
        assert await gateway_tables(conn) == ["public.alembic_version"]
        assert await conn.fetchval(SCHEMA_EXISTS_SQL, "auth") == 0
        assert await conn.fetchval(SCHEMA_EXISTS_SQL, "analytics") == 0
        assert await conn.fetchval(FUNCTION_SQL, "public.mwplu_is_admin()") is False
        # but the cluster-wide roles stay
        assert {r["rolname"] for r in await conn.fetch(ROLES_SQL)} == {
            "anon", "authenticated", "service_role", "authenticator",
        }

        # when it is upgraded again, then it works and the tables are back
        migrate.upgrade(url)
        assert await migrate.current_revision(url) == HEAD
        assert "public.v2_messages" in await gateway_tables(conn)
    finally:
        await conn.close()


async def test_upgrade_at_head_is_a_no_op(server: Server, database: str) -> None:
    url = owner_url(server, database)
    migrate.upgrade(url)
    assert await migrate.current_revision(url) == HEAD
    assert migrate.head_revision() == HEAD


async def test_the_authenticator_password_is_set_by_every_upgrade(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    """A database already at head still gets AUTHENTICATOR_PASSWORD (the deploy steps rely on
    it); the role is the cluster's, so the test puts it back as it was."""
    url = owner_url(server, database)
    secret = "SELECT rolpassword FROM pg_authid WHERE rolname = 'authenticator'"
    before = await owner.fetchval(secret)
    try:
        migrate.upgrade(url, authenticator_password="first o'ne")
        first = await owner.fetchval(secret)
        migrate.upgrade(url, authenticator_password="second")
        second = await owner.fetchval(secret)
        assert first is not None and second is not None and first != second
        assert await migrate.current_revision(url) == HEAD
    finally:
        if before is None:
            await owner.execute("ALTER ROLE authenticator PASSWORD NULL")


# --- the schema after upgrade -------------------------------------------------------------------


@pytest.mark.parametrize("table", sorted(SHARED_AND_V1_COLUMNS))
async def test_shared_v1_bridge_and_analytics_columns(
    owner: asyncpg.Connection, table: str
) -> None:
    assert await columns(owner, table, not_null=False) == SHARED_AND_V1_COLUMNS[table]


@pytest.mark.parametrize("table", sorted(V2_COLUMNS))
async def test_v2_tables_have_exactly_the_seed_columns(
    owner: asyncpg.Connection, table: str
) -> None:
    assert await columns(owner, f"public.{table}", not_null=True) == V2_COLUMNS[table]


async def test_no_timestamp_without_time_zone(owner: asyncpg.Connection) -> None:
    assert await owner.fetch(TIMESTAMP_WITHOUT_TZ_SQL, list(GATEWAY_SCHEMAS)) == []


async def test_not_null_and_unique_keys_of_design(owner: asyncpg.Connection) -> None:
    v1 = await columns(owner, "public.chat_conversations", not_null=True)
    messages = await columns(owner, "public.chat_messages", not_null=True)
    assert "user_id uuid NOT NULL" in v1
    assert "message text NOT NULL" in messages
    assert await owner.fetch(UNIQUE_COLUMNS_SQL, "public.migration_tracking") == [
        (["v1_conversation_id"],)
    ]
    unique_links = await owner.fetch(UNIQUE_COLUMNS_SQL, "public.v2_conversation_documents")
    assert unique_links == [(["conversation_id", "document_id"],)]


async def test_check_constraints_exist_on_the_seed_columns(owner: asyncpg.Connection) -> None:
    checked = {(t, c) for t, c in await owner.fetch(CHECKED_COLUMNS_SQL)}
    assert checked == CHECKED_COLUMNS


async def test_v2_message_role_is_checked(owner: asyncpg.Connection) -> None:
    # given a v2 conversation
    user = await make_user(owner)
    conversation = await make_v2_conversation(owner, user)
    # when a message with an unknown role is inserted, then the CHECK refuses it
    with pytest.raises(asyncpg.CheckViolationError, match="v2_messages"):
        await insert(owner, "v2_messages", conversation_id=conversation, user_id=user,
                     role="robot", message="bonjour")
    # and a valid role is accepted
    await insert(owner, "v2_messages", conversation_id=conversation, user_id=user,
                 role="system", message="bonjour")


async def test_v1_message_role_is_checked(owner: asyncpg.Connection) -> None:
    user = await make_user(owner)
    conversation = await make_v1_conversation(owner, user)
    with pytest.raises(asyncpg.CheckViolationError, match="chat_messages"):
        await insert(owner, "chat_messages", conversation_id=conversation, user_id=user,
                     role="bot", message="salut")


async def test_migration_status_accepts_reverted_and_nothing_unknown(
    owner: asyncpg.Connection,
) -> None:
    # given two v1 conversations
    user = await make_user(owner)
    first = await make_v1_conversation(owner, user)
    second = await make_v1_conversation(owner, user)
    # when a tracking row is marked reverted, then it is accepted, with reverted_at
    row = await insert(owner, "migration_tracking", v1_conversation_id=first,
                       migration_status="reverted", reverted_at=None)
    await owner.execute("UPDATE migration_tracking SET reverted_at = now() WHERE id = $1", row)
    assert await owner.fetchval(
        "SELECT migration_status FROM migration_tracking WHERE id = $1", row
    ) == "reverted"
    # but an unknown status is refused
    with pytest.raises(asyncpg.CheckViolationError, match="migration_tracking"):
        await insert(owner, "migration_tracking", v1_conversation_id=second,
                     migration_status="archived")


async def test_one_tracking_row_per_v1_conversation(owner: asyncpg.Connection) -> None:
    user = await make_user(owner)
    v1 = await make_v1_conversation(owner, user)
    await insert(owner, "migration_tracking", v1_conversation_id=v1, migration_status="pending")
    with pytest.raises(asyncpg.UniqueViolationError):
        await insert(owner, "migration_tracking", v1_conversation_id=v1,
                     migration_status="failed")


async def test_seed_indexes_exist_on_their_tables(owner: asyncpg.Connection) -> None:
    indexes = {name: (table, ddl) for name, table, ddl in await owner.fetch(INDEXES_SQL)}
    missing = sorted(set(SEED_INDEXES) - set(indexes))
    assert missing == []
    assert {name: indexes[name][0] for name in SEED_INDEXES} == SEED_INDEXES
    assert "USING gin (referenced_documents)" in indexes["idx_v2_msg_documents"][1]
    assert "WHERE (pinned = true)" in indexes["idx_v2_proj_docs_pinned"][1]


@pytest.mark.parametrize("table", RLS_TABLES)
async def test_row_level_security_is_enabled_with_policies(
    owner: asyncpg.Connection, table: str
) -> None:
    schema, name = table.split(".")
    assert await owner.fetchval(RLS_SQL, table) is True
    policies = await owner.fetch(POLICIES_SQL, schema, name)
    assert "SELECT" in {p["cmd"] for p in policies}


@pytest.mark.parametrize("table", [t.split(".")[1] for t in V2_TABLES])
async def test_v2_tables_have_policies_for_every_command(
    owner: asyncpg.Connection, table: str
) -> None:
    commands = {p["cmd"] for p in await owner.fetch(POLICIES_SQL, "public", table)}
    assert commands == {"SELECT", "INSERT", "UPDATE", "DELETE"}


async def test_seed_policies_on_v2_projects_run_verbatim(owner: asyncpg.Connection) -> None:
    rows = await owner.fetch(POLICIES_SQL, "public", "v2_projects")
    policies = {(p["policyname"], p["cmd"]) for p in rows}
    assert policies == SEED_PROJECT_POLICIES


async def test_postgrest_roles(owner: asyncpg.Connection) -> None:
    roles = {r["rolname"]: r for r in await owner.fetch(ROLES_SQL)}
    assert set(roles) == {"anon", "authenticated", "service_role", "authenticator"}
    for nologin in ("anon", "authenticated", "service_role"):
        assert roles[nologin]["rolcanlogin"] is False
    assert roles["service_role"]["rolbypassrls"] is True
    assert roles["authenticated"]["rolbypassrls"] is False
    assert roles["authenticator"]["rolcanlogin"] is True
    assert roles["authenticator"]["rolinherit"] is False
    memberships = {r[0] for r in await owner.fetch(MEMBERSHIPS_SQL)}
    assert {"anon", "authenticated", "service_role"} <= memberships


# --- downgrades keep v1 and shared rows --------------------------------------------------------


async def test_downgrades_leave_v1_and_shared_rows_unchanged(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    url = owner_url(server, database)
    # given rows in every v1 and shared table, and v2 and bridge rows that point at them
    await fill_every_table(owner)
    before = await row_hashes(owner)
    assert None not in before.values(), "every preserved table must hold rows"

    # when the bridge is dropped, then v1 and shared rows are byte-for-byte the same
    migrate.downgrade(url, "0004_v2")
    assert await migrate.current_revision(url) == "0004_v2"
    assert await owner.fetchval("SELECT to_regclass('public.migration_tracking')") is None
    assert await row_hashes(owner) == before

    # when v2 is dropped too, then the same holds
    migrate.downgrade(url, "0003_v1")
    assert await migrate.current_revision(url) == "0003_v1"
    assert await owner.fetchval("SELECT to_regclass('public.v2_projects')") is None
    assert await row_hashes(owner) == before

    # when upgraded to head again, then it works, v1 is intact and v2 starts empty
    migrate.upgrade(url)
    assert await migrate.current_revision(url) == HEAD
    assert await row_hashes(owner) == before
    assert await owner.fetchval(ROW_COUNT_SQL.format(table="v2_conversations")) == 0


NEWEST_INDEXES_SQL = """
SELECT c.relname, i.indisvalid, obj_description(c.oid, 'pg_class') AS mark
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relname LIKE '%newest' ORDER BY 1
"""
NEWEST_INDEXES = [
    "idx_chat_events_newest", "idx_chat_events_source_newest", "idx_chat_events_user_newest",
    "idx_research_history_user_newest", "idx_v2_projects_newest", "idx_v2_research_user_newest",
]


async def test_newest_first_indexes_are_built_and_go_with_their_downgrade(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    """0011: the newest-first listings' indexes, marked; the downgrade drops them and keeps
    the earlier ones; an index a failed build left invalid is built again."""
    url = owner_url(server, database)
    found = await owner.fetch(NEWEST_INDEXES_SQL)
    assert [(r["relname"], r["indisvalid"], r["mark"]) for r in found] == [
        (name, True, MARK) for name in NEWEST_INDEXES
    ]
    indexdef = "SELECT indexdef FROM pg_indexes WHERE indexname = $1"
    assert (await owner.fetchval(indexdef, "idx_chat_events_source_newest")).endswith(
        "(((metadata ->> 'source'::text)), created_at DESC NULLS LAST, id DESC)"
    )

    migrate.downgrade(url, "0010_event_function")
    assert await owner.fetch(NEWEST_INDEXES_SQL) == []
    for earlier in ("idx_v2_projects_listing", "idx_chat_events_created"):
        assert await owner.fetchval(indexdef, earlier) is not None

    # a build that failed (here: one marked invalid by hand) is dropped and built again
    await owner.execute(
        "CREATE INDEX idx_v2_projects_newest ON v2_projects (created_at DESC NULLS LAST, id DESC)"
    )
    await owner.execute(
        "UPDATE pg_index SET indisvalid = false "
        "WHERE indexrelid = 'public.idx_v2_projects_newest'::regclass"
    )
    migrate.upgrade(url)
    found = await owner.fetch(NEWEST_INDEXES_SQL)
    assert [(r["relname"], r["indisvalid"], r["mark"]) for r in found] == [
        (name, True, MARK) for name in NEWEST_INDEXES
    ]


# --- create only what is absent ------------------------------------------------------------------


async def test_an_existing_table_is_neither_altered_nor_dropped(
    server: Server, empty_database: str
) -> None:
    url = owner_url(server, empty_database)
    conn = await server.connect(empty_database)
    try:
        # given a database with the auth layer and a production-like cities table
        migrate.upgrade(url, "0001_auth")
        await conn.execute(HAND_MADE_CITIES)
        lyon = uuid.uuid4()
        await conn.execute("INSERT INTO cities VALUES ($1, 'Lyon', '69123', 522250)", lyon)
        columns_before = await columns(conn, "public.cities", not_null=True)
        acl_before = await conn.fetchval(TABLE_ACL_SQL, "public.cities")
        indexes_before = await conn.fetchval(TABLE_INDEXES_SQL, "cities")

        # when the gateway upgrades to head
        migrate.upgrade(url)

        # then cities is exactly as it was: columns, row, grants, indexes, no mark, no RLS
        assert await columns(conn, "public.cities", not_null=True) == columns_before
        assert "population integer" in columns_before
        assert await conn.fetchval("SELECT population FROM cities WHERE id = $1", lyon) == 522250
        assert await conn.fetchval(TABLE_ACL_SQL, "public.cities") == acl_before
        assert await conn.fetchval(TABLE_INDEXES_SQL, "cities") == indexes_before
        assert await conn.fetchval(TABLE_COMMENT_SQL, "public.cities") is None
        assert await conn.fetchval(RLS_SQL, "public.cities") is False
        # while the tables the gateway did create carry its mark
        assert await conn.fetchval(TABLE_COMMENT_SQL, "public.zones") == MARK

        # when the gateway downgrades to base, then cities stays, with its row
        migrate.downgrade(url, "base")
        assert await gateway_tables(conn) == ["public.alembic_version", "public.cities"]
        assert await conn.fetchval(ROW_COUNT_SQL.format(table="cities")) == 1
        assert await columns(conn, "public.cities", not_null=True) == columns_before
    finally:
        await conn.close()


# --- errors -------------------------------------------------------------------------------------


async def test_unknown_revision_is_a_migration_error(server: Server, empty_database: str) -> None:
    url = owner_url(server, empty_database)
    with pytest.raises(migrate.MigrationError, match="unknown revision 'nope'"):
        migrate.upgrade(url, "nope")
    with pytest.raises(migrate.MigrationError, match="unknown revision '0099_future'"):
        migrate.downgrade(url, "0099_future")
    # and nothing was applied
    assert await migrate.current_revision(url) is None


async def test_realtime_triggers_announce_v2_rows_and_go_with_their_downgrade(  # and 0010's
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    """0009_realtime: a v2 message and a moved last_message_at are announced on
    ``mwplu_events`` at COMMIT (ids only); after its downgrade nothing is, and no trigger or
    function of it is left."""
    url = owner_url(server, database)
    user = await make_user(owner)
    conversation = await make_v2_conversation(owner, user)
    heard: list[str] = []
    listener = await server.connect(database)
    await listener.add_listener("mwplu_events", lambda *args: heard.append(args[-1]))
    try:
        message = await insert(owner, "v2_messages", conversation_id=conversation, user_id=user,
                               role="user", message="hello")
        await owner.execute(
            "UPDATE v2_conversations SET last_message_at = now() WHERE id = $1", conversation
        )
        for _ in range(100):
            if len(heard) >= 2:
                break
            await asyncio.sleep(0.02)
        announced = [json.loads(h) for h in heard]
        assert [(a["k"], a["s"], a["id"]) for a in announced] == [
            ("m", "v2", str(message)), ("c", "v2", str(conversation))]
        assert announced[0]["c"] == str(conversation) and announced[0]["u"] == str(user)
        assert set(announced[0]) == {"k", "s", "id", "c", "u", "at"}  # ids only, no text

        migrate.downgrade(url, "0008_writes")
        heard.clear()
        await insert(owner, "v2_messages", conversation_id=conversation, user_id=user,
                     role="user", message="unheard")
        await asyncio.sleep(0.2)
        assert heard == []
        triggers = await owner.fetchval(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'mwplu_announce%'"
        )
        assert triggers == 0
        assert await owner.fetchval(FUNCTION_SQL, "public.mwplu_announce_v2_message()") is False
        # 0010_event_function went first: its schema and function too
        assert await owner.fetchval(SCHEMA_EXISTS_SQL, "mwplu_private") == 0
        migrate.upgrade(url)
        assert await owner.fetchval(SCHEMA_EXISTS_SQL, "mwplu_private") == 1
        assert await owner.fetchval(FUNCTION_SQL, "public.mwplu_announce_v2_message()") is True
    finally:
        await listener.close()
