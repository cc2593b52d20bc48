"""Who sees what (DESIGN §4, issue 5): two users A and B, an admin, the service role and an
anonymous viewer, over every read path of the graph and directly over the tables under RLS;
nothing of one request survives into the next on a pooled connection, also when a request is
cancelled or its client goes away mid-transaction; mutations on another user's objects are
``NOT_FOUND``. The gateway's requests run directly and through PgBouncer in transaction mode
(``route``), where a transaction's server connection may have served anyone before."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

import gateway.context as context_module
from gateway.context import ConnectionGate, Context
from gateway.db import StatementCounter, Viewer, create_engine, pooled, transactions
from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.store import shared
from resolvers.ids import to_global_id
from tests.conftest import Server, bearer
from tests.factories import (
    insert,
    make_city,
    make_document,
    make_event,
    make_project,
    make_user,
    make_v1_conversation,
    make_v2_conversation,
    make_zone,
)
from tests.pgbouncer import ROUTES
from tests.serving import free_port

MIGRATE = """
mutation Migrate($id: ID!, $project: ID) {
  migrateConversation(input: {conversationId: $id, projectId: $project}) {
    migration { databaseId } conversation { databaseId } project { databaseId }
  }
}
"""
REVERT = """
mutation Revert($id: ID!) { revertMigration(input: {conversationId: $id}) { migration { id } } }
"""


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Public:
    city: uuid.UUID
    zone: uuid.UUID
    zoning: uuid.UUID
    typology: uuid.UUID
    document: uuid.UUID


@dataclass
class Side:
    """One user's rows."""

    user: uuid.UUID
    v1: uuid.UUID = field(default=uuid.UUID(int=0))
    v1_migrated: uuid.UUID = field(default=uuid.UUID(int=0))
    v2: uuid.UUID = field(default=uuid.UUID(int=0))
    v2_copy: uuid.UUID = field(default=uuid.UUID(int=0))
    project: uuid.UUID = field(default=uuid.UUID(int=0))
    migration: uuid.UUID = field(default=uuid.UUID(int=0))


@dataclass
class World:
    a: Side
    b: Side
    admin: uuid.UUID
    public: Public


async def make_side(
    conn: asyncpg.Connection, client: httpx.AsyncClient, name: str, public: Public
) -> Side:
    user = await make_user(conn, name)
    side = Side(user=user)
    side.v1 = await make_v1_conversation(
        conn, user, last=-1, document_id=public.document, messages=3
    )
    side.v1_migrated = await make_v1_conversation(conn, user, last=-2, messages=2)
    side.project = await make_project(conn, user, name=f"Projet {name}")
    await insert(conn, "v2_project_documents", project_id=side.project, document_id=public.document)
    side.v2 = await make_v2_conversation(
        conn, user, project_id=side.project, last=-3, messages=3, document_ids=(public.document,)
    )
    await insert(conn, "research_history", user_id=user, address_input=f"1 rue {name}")
    await insert(
        conn,
        "v2_research_history",
        user_id=user,
        address_input=f"2 rue {name}",
        conversation_id=side.v2,
        project_id=side.project,
    )
    for source in ("v1", "v2", "v2"):
        await make_event(conn, user, source=source, tokens=10)
    response = await client.post(
        "/graphql",
        json={
            "query": MIGRATE,
            "variables": {"id": to_global_id("V1Conversation", side.v1_migrated)},
        },
        headers=bearer(str(user)),
    )
    payload = response.json()["data"]["migrateConversation"]
    side.migration = uuid.UUID(payload["migration"]["databaseId"])
    side.v2_copy = uuid.UUID(payload["conversation"]["databaseId"])
    return side


@pytest.fixture
async def world(owner: asyncpg.Connection, client: httpx.AsyncClient) -> World:
    city = await make_city(owner, "Rennes", "35238")
    zone = await make_zone(owner, city, "UA")
    zoning = await owner.fetchval("SELECT zoning_id FROM zones WHERE id = $1", zone)
    typology = await insert(owner, "typologies", name="PLU")
    document = await make_document(
        owner, "Règlement UA", city_id=city, zone_id=zone, zoning_id=zoning, typology_id=typology
    )
    public = Public(city, zone, zoning, typology, document)
    a = await make_side(owner, client, "Alice A", public)
    b = await make_side(owner, client, "Bruno B", public)
    admin = await make_user(owner, "Ada Admin", is_admin=True)
    return World(a=a, b=b, admin=admin, public=public)


# --- ground truth, read as the owner (RLS bypassed) ---------------------------------------------

# Per table: the ids a viewer who may read the rows of ``$1`` (user ids) must see.
TRUTH = {
    "chat_conversations": "SELECT id FROM chat_conversations WHERE user_id = ANY($1)",
    "chat_messages": "SELECT m.id FROM chat_messages m JOIN chat_conversations c "
    "ON c.id = m.conversation_id WHERE c.user_id = ANY($1)",
    "research_history": "SELECT id FROM research_history WHERE user_id = ANY($1)",
    "v2_projects": "SELECT id FROM v2_projects WHERE user_id = ANY($1)",
    "v2_conversations": "SELECT id FROM v2_conversations WHERE user_id = ANY($1)",
    "v2_messages": "SELECT id FROM v2_messages WHERE user_id = ANY($1)",
    "v2_research_history": "SELECT id FROM v2_research_history WHERE user_id = ANY($1)",
    "v2_conversation_documents": "SELECT d.id FROM v2_conversation_documents d "
    "JOIN v2_conversations c ON c.id = d.conversation_id WHERE c.user_id = ANY($1)",
    "v2_project_documents": "SELECT d.id FROM v2_project_documents d "
    "JOIN v2_projects p ON p.id = d.project_id WHERE p.user_id = ANY($1)",
    "migration_tracking": "SELECT t.id FROM migration_tracking t WHERE "
    "EXISTS (SELECT 1 FROM chat_conversations c WHERE c.id = t.v1_conversation_id "
    "AND c.user_id = ANY($1)) OR EXISTS (SELECT 1 FROM v2_conversations c "
    "WHERE c.id = t.v2_conversation_id AND c.user_id = ANY($1))",
    "analytics.chat_events": "SELECT id FROM analytics.chat_events WHERE user_id = ANY($1)",
    "profiles": "SELECT id FROM profiles WHERE id = ANY($1)",
}


async def truth(conn: asyncpg.Connection, table: str, users: list[uuid.UUID]) -> set[uuid.UUID]:
    return {r["id"] for r in await conn.fetch(TRUTH[table], users)}


async def everyone(conn: asyncpg.Connection) -> list[uuid.UUID]:
    return [r["id"] for r in await conn.fetch("SELECT id FROM profiles")]


# --- the graph ----------------------------------------------------------------------------------

READ_ALL = """
query ReadAll {
  viewer { databaseId }
  conversations(first: 100, filter: {includeMigrated: true}) {
    totalCount
    edges { node {
      __typename databaseId owner { databaseId }
      messages(first: 100) { totalCount edges { node { __typename databaseId } } }
      ... on V1Conversation { migration { databaseId v1Conversation { databaseId } } }
      ... on V2Conversation { project { databaseId } migratedFrom { databaseId } }
    } }
  }
  projects(first: 100) {
    totalCount
    edges { node {
      databaseId owner { databaseId }
      conversations(first: 100) { totalCount edges { node { databaseId } } }
      documents { databaseId }
    } }
  }
  chatEvents(first: 100) { totalCount edges { node { databaseId user { databaseId } } } }
  chatEventStats { events tokensTotal }
  cities(first: 100) { totalCount edges { node { databaseId } } }
  documents(first: 100) { totalCount edges { node { databaseId } } }
}
"""

NODES = """
query Nodes($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }
"""
NODE = """
query Node($id: ID!) { node(id: $id) { __typename id } }
"""


def headers_for(viewer: str, world: World) -> dict[str, str]:
    if viewer == "anon":
        return {}
    if viewer == "service":
        return bearer(str(world.a.user), "service_role")
    user = {"a": world.a.user, "b": world.b.user, "admin": world.admin}[viewer]
    return bearer(str(user))


def readable_users(viewer: str, world: World, all_users: list[uuid.UUID]) -> list[uuid.UUID]:
    return {
        "a": [world.a.user],
        "b": [world.b.user],
        "admin": all_users,
        "service": all_users,
        "anon": [],
    }[viewer]


async def private_ids(
    owner: asyncpg.Connection, users: list[uuid.UUID]
) -> dict[str, set[uuid.UUID]]:
    """Every private Node of ``users``, by graph type."""
    return {
        "V1Conversation": await truth(owner, "chat_conversations", users),
        "V2Conversation": await truth(owner, "v2_conversations", users),
        "V1Message": await truth(owner, "chat_messages", users),
        "V2Message": await truth(owner, "v2_messages", users),
        "Project": await truth(owner, "v2_projects", users),
        "Migration": await truth(owner, "migration_tracking", users),
        "ChatEvent": await truth(owner, "analytics.chat_events", users),
        "Profile": await truth(owner, "profiles", users),
    }


def ids_of(edges: list[dict[str, Any]]) -> set[uuid.UUID]:
    return {uuid.UUID(e["node"]["databaseId"]) for e in edges}


VIEWERS = ["a", "b", "admin", "service", "anon"]


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_every_read_path_returns_only_what_the_policies_allow(
    viewer: str, world: World, client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    all_users = await everyone(owner)
    users = readable_users(viewer, world, all_users)
    expected = await private_ids(owner, users)
    response = await client.post(
        "/graphql", json={"query": READ_ALL}, headers=headers_for(viewer, world)
    )
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    data = body["data"]

    # viewer
    # a service token names a user (its sub): that user's profile is its viewer
    me = {"a": world.a.user, "b": world.b.user, "admin": world.admin,
          "service": world.a.user}.get(viewer)
    assert data["viewer"] == ({"databaseId": str(me)} if me else None)

    # conversations, their owners, messages and migrations
    conversations = [e["node"] for e in data["conversations"]["edges"]]
    seen_v1 = {
        uuid.UUID(c["databaseId"]) for c in conversations if c["__typename"] == "V1Conversation"
    }
    seen_v2 = {
        uuid.UUID(c["databaseId"]) for c in conversations if c["__typename"] == "V2Conversation"
    }
    assert seen_v1 == expected["V1Conversation"]
    assert seen_v2 == expected["V2Conversation"]
    assert data["conversations"]["totalCount"] == len(seen_v1) + len(seen_v2)
    assert {uuid.UUID(c["owner"]["databaseId"]) for c in conversations} <= set(users)
    seen_messages = {
        (m["node"]["__typename"], uuid.UUID(m["node"]["databaseId"]))
        for c in conversations
        for m in c["messages"]["edges"]
    }
    assert {i for t, i in seen_messages if t == "V1Message"} == expected["V1Message"]
    assert {i for t, i in seen_messages if t == "V2Message"} == expected["V2Message"]
    migrations = {
        uuid.UUID(c["migration"]["databaseId"])
        for c in conversations
        if c.get("migration") is not None
    }
    assert migrations == expected["Migration"]
    copies = {
        uuid.UUID(c["migratedFrom"]["databaseId"])
        for c in conversations
        if c.get("migratedFrom") is not None
    }
    assert copies == {s.v1_migrated for s in (world.a, world.b) if s.user in users}

    # projects and their conversations
    projects = [e["node"] for e in data["projects"]["edges"]]
    assert {uuid.UUID(p["databaseId"]) for p in projects} == expected["Project"]
    assert {uuid.UUID(p["owner"]["databaseId"]) for p in projects} <= set(users)
    project_conversations = {
        uuid.UUID(e["node"]["databaseId"]) for p in projects for e in p["conversations"]["edges"]
    }
    assert project_conversations == expected["V2Conversation"]

    # analytics
    assert ids_of(data["chatEvents"]["edges"]) == expected["ChatEvent"]
    assert data["chatEvents"]["totalCount"] == len(expected["ChatEvent"])
    assert sum(b["events"] for b in data["chatEventStats"]) == len(expected["ChatEvent"])

    # public reference data: everyone
    assert world.public.city in ids_of(data["cities"]["edges"])
    assert world.public.document in ids_of(data["documents"]["edges"])


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_node_and_nodes_return_null_for_what_is_not_visible(
    viewer: str, world: World, client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    all_users = await everyone(owner)
    visible = await private_ids(owner, readable_users(viewer, world, all_users))
    every = await private_ids(owner, all_users)
    public = {
        "City": world.public.city,
        "Zone": world.public.zone,
        "Zoning": world.public.zoning,
        "Typology": world.public.typology,
        "Document": world.public.document,
    }
    ids: list[tuple[str, uuid.UUID, bool]] = [
        (t, i, i in visible[t]) for t, all_of_type in every.items() for i in sorted(all_of_type)
    ]
    ids += [(t, i, True) for t, i in public.items()]
    assert sum(1 for _, _, v in ids if not v) > 0 or viewer in ("admin", "service")
    headers = headers_for(viewer, world)

    # nodes: all at once, in order
    global_ids = [to_global_id(t, i) for t, i, _ in ids]
    response = await client.post(
        "/graphql", json={"query": NODES, "variables": {"ids": global_ids}}, headers=headers
    )
    body = response.json()
    assert "errors" not in body, body
    got = body["data"]["nodes"]
    for (type_name, _, is_visible), global_id, node in zip(ids, global_ids, got, strict=True):
        if is_visible:
            assert node == {"__typename": type_name, "id": global_id}, (viewer, type_name)
        else:
            assert node is None, (viewer, type_name)

    # node: one by one for the other side's objects (and one of each visible type)
    for type_name, database_id, is_visible in ids:
        response = await client.post(
            "/graphql",
            json={"query": NODE, "variables": {"id": to_global_id(type_name, database_id)}},
            headers=headers,
        )
        node = response.json()["data"]["node"]
        assert (node is not None) == is_visible, (viewer, type_name, database_id)


async def test_a_user_reaches_nothing_of_another_user_through_nested_fields(
    world: World, client: httpx.AsyncClient
) -> None:
    # B's documents are public, but B's conversation is not reachable from them, and B's
    # migration is null through A's ... nothing: A gets nothing of B anywhere.
    query = """
    query($v1: ID!, $v2: ID!, $p: ID!, $m: ID!) {
      v1: node(id: $v1) { ... on V1Conversation { migration { id } messages { totalCount } } }
      v2: node(id: $v2) { ... on V2Conversation { project { id } } }
      p: node(id: $p) { ... on Project { conversations { totalCount } } }
      m: node(id: $m) { ... on Migration { v1Conversation { id } v2Conversation { id } } }
      conversations(filter: {ownerId: "%s", includeMigrated: true}) { totalCount }
      chatEvents(filter: {userId: "%s"}) { totalCount }
      chatEventStats(filter: {userId: "%s"}) { events }
    }
    """ % ((to_global_id("Profile", world.b.user),) * 3)
    variables = {
        "v1": to_global_id("V1Conversation", world.b.v1_migrated),
        "v2": to_global_id("V2Conversation", world.b.v2_copy),
        "p": to_global_id("Project", world.b.project),
        "m": to_global_id("Migration", world.b.migration),
    }
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=bearer(str(world.a.user))
    )
    body = response.json()
    assert "errors" not in body, body
    data = body["data"]
    assert data["v1"] is None and data["v2"] is None and data["p"] is None and data["m"] is None
    assert data["conversations"]["totalCount"] == 0
    assert data["chatEvents"]["totalCount"] == 0
    assert data["chatEventStats"] == [] or sum(b["events"] for b in data["chatEventStats"]) == 0


# --- RLS, not resolver filters ------------------------------------------------------------------


async def rls_view(
    server: Server, database: str, role: str, claims: dict[str, Any] | None
) -> dict[str, set[uuid.UUID] | str]:
    """Every table read with a bare ``SELECT id`` as the authenticator switched to ``role``
    with ``claims``: only RLS filters the rows. A table the role may not read at all maps to
    the SQLSTATE of the refusal."""
    conn = await server.connect(database, "authenticator")
    seen: dict[str, set[uuid.UUID] | str] = {}
    try:
        for table in TRUTH:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL ROLE {role}")
                if claims is not None:
                    await conn.execute(
                        "SELECT set_config('request.jwt.claims', $1, true)", json.dumps(claims)
                    )
                try:
                    async with conn.transaction():  # a savepoint
                        seen[table] = {r["id"] for r in await conn.fetch(f"SELECT id FROM {table}")}
                except asyncpg.InsufficientPrivilegeError as exc:
                    seen[table] = exc.sqlstate
        # and nothing stays behind on the session
        assert await conn.fetchval("SELECT current_user") == "authenticator"
        assert await conn.fetchval("SELECT current_setting('request.jwt.claims', true)") in (
            None,
            "",
        )
    finally:
        await conn.close()
    return seen


@pytest.mark.parametrize("viewer", ["a", "b", "admin"])
async def test_rls_alone_keeps_users_apart(
    viewer: str, world: World, server: Server, database: str, owner: asyncpg.Connection
) -> None:
    user = {"a": world.a.user, "b": world.b.user, "admin": world.admin}[viewer]
    users = readable_users(viewer, world, await everyone(owner))
    seen = await rls_view(
        server, database, "authenticated", {"sub": str(user), "role": "authenticated"}
    )
    for table in TRUTH:
        expected = await truth(owner, table, users)
        assert seen[table] == expected, table
        assert expected, f"the fixture has no rows in {table}"
    if viewer == "a":
        other = await truth(owner, "chat_conversations", [world.b.user])
        assert not other & seen["chat_conversations"]  # type: ignore[operator]


async def test_rls_without_claims_shows_nothing(
    world: World, server: Server, database: str
) -> None:
    seen = await rls_view(server, database, "authenticated", None)
    assert all(rows == set() for rows in seen.values()), seen
    forged = await rls_view(
        server, database, "authenticated", {"role": "authenticated", "is_admin": True}
    )
    assert all(rows == set() for rows in forged.values()), forged


async def test_rls_for_anon_grants_no_private_table(
    world: World, server: Server, database: str
) -> None:
    seen = await rls_view(server, database, "anon", {"role": "anon"})
    for table, rows in seen.items():
        # no privilege at all ('42501'), or no row
        assert rows in ("42501", set()), (table, rows)


async def test_service_role_reads_everything(
    world: World, server: Server, database: str, owner: asyncpg.Connection
) -> None:
    seen = await rls_view(server, database, "service_role", {"role": "service_role"})
    users = await everyone(owner)
    for table in TRUTH:
        assert seen[table] == await truth(owner, table, users), table


# --- mutations on another user's objects --------------------------------------------------------


async def test_mutations_on_another_users_objects_are_not_found(
    world: World, client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    before = await owner.fetch("SELECT * FROM migration_tracking ORDER BY id")
    as_a = bearer(str(world.a.user))
    cases = [
        (MIGRATE, {"id": to_global_id("V1Conversation", world.b.v1)}),
        (MIGRATE, {"id": to_global_id("V1Conversation", world.b.v1_migrated)}),
        (
            MIGRATE,
            {
                "id": to_global_id("V1Conversation", world.a.v1),
                "project": to_global_id("Project", world.b.project),
            },
        ),
        (REVERT, {"id": to_global_id("V1Conversation", world.b.v1_migrated)}),
        (REVERT, {"id": to_global_id("V2Conversation", world.b.v2_copy)}),
        (MIGRATE, {"id": to_global_id("V1Conversation", uuid.uuid4())}),
    ]
    for query, variables in cases:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=as_a
        )
        body = response.json()
        assert body["data"] is None, body
        [error] = body["errors"]
        assert error["extensions"]["code"] == "NOT_FOUND", (variables, body)
        # the message does not tell a missing conversation from someone else's
        assert str(world.b.user) not in error["message"]
    assert await owner.fetch("SELECT * FROM migration_tracking ORDER BY id") == before
    # A's own conversation did not move either (the project check failed first)
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM migration_tracking WHERE v1_conversation_id = $1", world.a.v1
        )
        == 0
    )


async def test_mutations_need_a_signed_in_viewer(
    world: World, client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": MIGRATE, "variables": {"id": to_global_id("V1Conversation", world.b.v1)}},
    )
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert statements.total == 0


# --- one pooled connection, many viewers --------------------------------------------------------

POOLED = """
{
  viewer { databaseId }
  conversations(first: 100, filter: {includeMigrated: true}) {
    edges { node { databaseId owner { databaseId } } }
  }
  cities(first: 1) { totalCount }
}
"""

# The same without ``viewer`` (which some tests below make slow).
POOLED_LIST = POOLED.replace("viewer { databaseId }", "")

LEFTOVERS = text(
    "SELECT current_setting('request.jwt.claims', true) AS claims, current_user AS user, "
    "current_setting('role') AS role, current_setting('statement_timeout') AS timeout, "
    "pg_backend_pid() AS pid"
)


@pytest.fixture
async def one_connection(gateway_url: URL, settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(gateway_url, settings, pool_size=1)
    yield eng
    await eng.dispose()


@pytest.fixture
async def pooled_client(
    one_connection: AsyncEngine, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=one_connection)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as c:
        yield c


async def leftovers(engine: AsyncEngine) -> dict[str, Any]:
    """What the connection the next request gets carries (the one the last kept)."""
    async with pooled(engine) as conn:
        row = (await conn.execute(LEFTOVERS)).mappings().one()
    return dict(row)


def assert_clean(row: dict[str, Any]) -> None:
    assert row["claims"] in (None, ""), row
    assert row["user"] == "authenticator", row
    assert row["role"] == "none", row
    assert row["timeout"] == "0", row


async def test_1000_alternating_requests_on_one_connection_leak_nothing(
    world: World, pooled_client: httpx.AsyncClient, one_connection: AsyncEngine
) -> None:
    viewers = [("a", world.a.user), ("b", world.b.user), ("anon", None)]
    pids: set[int] = set()
    foreign = 0
    started = time.monotonic()
    for i in range(1000):
        _, user = viewers[i % 3]
        headers = bearer(str(user)) if user else {}
        response = await pooled_client.post("/graphql", json={"query": POOLED}, headers=headers)
        body = response.json()
        assert "errors" not in body, body
        data = body["data"]
        owners = {e["node"]["owner"]["databaseId"] for e in data["conversations"]["edges"]}
        if user is None:
            foreign += len(owners) + (data["viewer"] is not None)
        else:
            foreign += len(owners - {str(user)}) + (data["viewer"] != {"databaseId": str(user)})
            assert len(data["conversations"]["edges"]) == 4  # v1, v1 migrated, v2, v2 copy
        assert data["cities"]["totalCount"] == 1
        row = await leftovers(one_connection)
        assert_clean(row)
        pids.add(row["pid"])
    assert foreign == 0
    assert len(pids) == 1, "the pool was supposed to reuse one connection"
    assert one_connection.pool.size() == 1  # type: ignore[attr-defined]
    assert time.monotonic() - started < 120


async def idle_in_transaction(owner: asyncpg.Connection, database: str) -> list[str]:
    rows = await owner.fetch(
        "SELECT state, query FROM pg_stat_activity WHERE datname = $1 "
        "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'",
        database,
    )
    return [f"{r['state']}: {r['query']}" for r in rows]


async def wait_for_sleep(owner: asyncpg.Connection, database: str, marker: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        running = await owner.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' "
            "AND query LIKE $2",
            database,
            f"%{marker}%",
        )
        if running:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the slow statement never started")


@pytest.fixture
def slow_viewer(monkeypatch: pytest.MonkeyPatch) -> str:
    """``Query.viewer`` becomes slow SQL inside the request's transaction."""
    marker = f"slow_{uuid.uuid4().hex[:8]}"

    async def viewer_profile(db: Any, *_args: Any) -> None:
        await db.execute(text(f"SELECT pg_sleep(2) AS {marker}"))

    monkeypatch.setattr(shared, "viewer_profile", viewer_profile)
    return marker


async def test_a_request_cancelled_mid_transaction_leaves_a_clean_pool(
    world: World,
    slow_viewer: str,
    pooled_client: httpx.AsyncClient,
    one_connection: AsyncEngine,
    owner: asyncpg.Connection,
    database: str,
) -> None:
    request = asyncio.create_task(
        pooled_client.post(
            "/graphql", json={"query": "{ viewer { id } }"}, headers=bearer(str(world.a.user))
        )
    )
    await wait_for_sleep(owner, database, slow_viewer)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    await asyncio.sleep(2.5)
    assert await idle_in_transaction(owner, database) == []
    assert_clean(await leftovers(one_connection))
    # the one connection serves the next viewer, with only their rows
    response = await pooled_client.post(
        "/graphql", json={"query": POOLED_LIST}, headers=bearer(str(world.b.user))
    )
    data = response.json()["data"]
    owners = {e["node"]["owner"]["databaseId"] for e in data["conversations"]["edges"]}
    assert owners == {str(world.b.user)}


async def test_a_late_request_does_not_take_the_connection_from_a_waiting_one(
    one_connection: AsyncEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Turns at the pool are first come, first served: a request that arrives just as the
    connection comes back (here: as the transaction that held it gives it back) waits behind
    the one already waiting. SQLAlchemy's async pool alone hands it the connection, and under
    load the same requests lost that race again and again (``gateway.context.ConnectionGate``)."""

    def context() -> Context:
        return Context(
            settings=settings, engine=one_connection, viewer=Viewer.service(), request_id="fifo"
        )

    order: list[str] = []

    async def request(name: str, ctx: Context) -> None:
        await ctx.db()
        order.append(name)
        await ctx.finish(commit=True)

    holder = context()
    await holder.db()
    waiting = asyncio.create_task(request("waiting", context()))
    await asyncio.sleep(0.05)
    assert order == [], "the one connection is taken: the request waits"
    late: list[asyncio.Task[None]] = []
    give_back = transactions.give_back

    async def arrive(conn: Any) -> None:
        await give_back(conn)
        if not late:
            late.append(asyncio.get_running_loop().create_task(request("late", context())))

    monkeypatch.setattr(transactions, "give_back", arrive)
    await holder.finish(commit=True)
    await asyncio.wait_for(asyncio.gather(waiting, *late), 10)
    assert late, "no request arrived as the connection came back"
    assert order == ["waiting", "late"]


async def test_a_request_that_fails_to_open_its_transaction_gives_its_turn_back(
    one_connection: AsyncEngine, settings: Settings
) -> None:
    for _ in range(3):  # one connection: a turn kept would block the next request for good
        broken = Context(
            settings=settings, engine=one_connection, viewer=Viewer(role="nobody"), request_id="x"
        )
        with pytest.raises(ValueError, match="unknown role"):
            await broken.db()
        await broken.finish(commit=False)
    ctx = Context(settings=settings, engine=one_connection, viewer=Viewer.service(), request_id="y")
    db = await asyncio.wait_for(ctx.db(), 5)
    assert await db.scalar(text("SELECT current_user")) == "service_role"
    await ctx.finish(commit=True)


async def test_a_request_cancelled_while_a_sibling_opens_its_transaction_gives_it_back(
    one_connection: AsyncEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request finishes (and is then cancelled) while one of its fields is still opening
    the transaction: that transaction is closed once open, and its connection serves the next
    request (one connection: one left checked out would block it for good)."""
    ctx = Context(settings=settings, engine=one_connection, viewer=Viewer.service(),
                  request_id="cancelled")
    opening, go_on = asyncio.Event(), asyncio.Event()
    open_transaction = transactions.open_transaction

    async def slow_open(*args: Any, **kwargs: Any) -> Any:
        opening.set()
        await go_on.wait()
        return await open_transaction(*args, **kwargs)

    monkeypatch.setattr(context_module, "open_transaction", slow_open)
    sibling = asyncio.create_task(ctx.db())
    await asyncio.wait_for(opening.wait(), 5)
    finishing = asyncio.create_task(ctx.finish(commit=True))
    await asyncio.sleep(0.01)  # waiting for the sibling's open
    finishing.cancel()
    await asyncio.wait([finishing], timeout=5)
    go_on.set()
    await asyncio.wait([sibling], timeout=5)
    monkeypatch.setattr(context_module, "open_transaction", open_transaction)

    after = Context(settings=settings, engine=one_connection, viewer=Viewer.service(),
                    request_id="after")
    db = await asyncio.wait_for(after.db(), 5)
    assert await db.scalar(text("SELECT current_user")) == "service_role"
    await after.finish(commit=True)


async def test_a_turn_not_given_within_the_pool_timeout_is_the_pool_error() -> None:
    gate = ConnectionGate(1, timeout=0.1)
    release = await gate.turn()
    with pytest.raises(PoolTimeoutError, match=r"no database connection free within 0\.1s"):
        await gate.turn()
    release()
    # the waiter that gave up holds nothing: the next turn is immediate
    again = await asyncio.wait_for(gate.turn(), 1)
    again()


async def test_a_client_that_disconnects_mid_transaction_leaves_a_clean_pool(
    world: World,
    slow_viewer: str,
    one_connection: AsyncEngine,
    settings: Settings,
    owner: asyncpg.Connection,
    database: str,
) -> None:
    import uvicorn

    app = create_app(settings, engine=one_connection)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(1000):
            if server.started:
                break
            await asyncio.sleep(0.01)
        body = json.dumps({"query": "{ viewer { id } }"}).encode()
        token = bearer(str(world.a.user))["Authorization"]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /graphql HTTP/1.1\r\nHost: gateway.test\r\n"
            b"Content-Type: application/json\r\n"
            + f"Authorization: {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        await wait_for_sleep(owner, database, slow_viewer)
        writer.close()  # the client goes away while the transaction is open
        await writer.wait_closed()
        await asyncio.sleep(2.5)
        assert await idle_in_transaction(owner, database) == []
        assert_clean(await leftovers(one_connection))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.post(
                "/graphql", json={"query": POOLED_LIST}, headers=bearer(str(world.b.user))
            )
        data = response.json()["data"]
        owners = {e["node"]["owner"]["databaseId"] for e in data["conversations"]["edges"]}
        assert owners == {str(world.b.user)}
    finally:
        server.should_exit = True
        await serving


# --- production refuses a login role that RLS does not bind ---------------------------------------


def production(url: Any) -> Settings:
    from tests.conftest import JWT_SECRET, render

    return Settings(jwt_secret=JWT_SECRET, env="production", database_url=render(url))


async def test_production_refuses_a_superuser_login(server: Server, database: str) -> None:
    from gateway.http.health import UnsafeDatabaseRole, check_serving_database

    with pytest.raises(UnsafeDatabaseRole, match=r"login role '\w+' is a superuser"):
        await check_serving_database(production(server.database_url(database)))


async def test_production_accepts_the_authenticator(server: Server, database: str) -> None:
    from gateway.http.health import check_serving_database

    await check_serving_database(production(server.database_url(database, "authenticator")))


async def test_the_lifespan_runs_the_check_in_production_only(
    server: Server, database: str
) -> None:
    from dataclasses import replace

    from gateway.http.health import UnsafeDatabaseRole

    superuser = production(server.database_url(database))
    app = create_app(superuser)
    with pytest.raises(UnsafeDatabaseRole, match="superuser"):
        async with app.router.lifespan_context(app):
            pass
    app = create_app(production(server.database_url(database, "authenticator")))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
        ) as client:
            response = await client.post("/graphql", json={"query": "{ __typename }"})
            assert response.json() == {"data": {"__typename": "Query"}}
    # development does not check (the embedded demo serves as it always did)
    app = create_app(replace(superuser, env="development"))
    async with app.router.lifespan_context(app):
        pass


@pytest.fixture
async def scratch_role(server: Server, database: str) -> AsyncIterator[str]:
    """A LOGIN role of this test only (roles are cluster-wide: it is dropped after)."""
    name = f"gw_role_{uuid.uuid4().hex[:10]}"
    admin = await server.connect(database)
    await admin.execute(f"CREATE ROLE {name} LOGIN")
    try:
        yield name
    finally:
        await admin.execute(f"REASSIGN OWNED BY {name} TO current_user")
        await admin.execute(f"DROP OWNED BY {name}")
        await admin.execute(f"DROP ROLE {name}")
        await admin.close()


async def test_production_refuses_a_bypassrls_login(
    server: Server, database: str, scratch_role: str, owner: asyncpg.Connection
) -> None:
    from gateway.http.health import UnsafeDatabaseRole, check_serving_database

    await owner.execute(f"ALTER ROLE {scratch_role} BYPASSRLS")
    with pytest.raises(UnsafeDatabaseRole, match=f"'{scratch_role}' has BYPASSRLS"):
        await check_serving_database(production(server.database_url(database, scratch_role)))


async def test_production_refuses_a_login_that_owns_the_tables(
    server: Server, database: str, scratch_role: str, owner: asyncpg.Connection
) -> None:
    from gateway.http.health import UnsafeDatabaseRole, check_serving_database

    await owner.execute(f"ALTER TABLE v2_conversations OWNER TO {scratch_role}")
    with pytest.raises(UnsafeDatabaseRole, match=f"'{scratch_role}' owns v2_conversations"):
        await check_serving_database(production(server.database_url(database, scratch_role)))
    # also when the owner is a role the login role is a member of
    await owner.execute(f"GRANT {scratch_role} TO authenticator")
    try:
        with pytest.raises(UnsafeDatabaseRole, match="'authenticator' owns v2_conversations"):
            await check_serving_database(production(server.database_url(database, "authenticator")))
    finally:
        await owner.execute(f"REVOKE {scratch_role} FROM authenticator")


async def test_production_refuses_a_viewer_role_that_bypasses_rls(
    server: Server, database: str, scratch_role: str, owner: asyncpg.Connection
) -> None:
    from gateway.http.health import UnsafeDatabaseRole, check_serving_database

    await owner.execute(f"ALTER TABLE chat_conversations OWNER TO {scratch_role}")
    await owner.execute(f"GRANT {scratch_role} TO authenticated")
    try:
        # (authenticator, a member of authenticated, is then a member of the owner too)
        with pytest.raises(UnsafeDatabaseRole, match="owns chat_conversations"):
            await check_serving_database(production(server.database_url(database, "authenticator")))
    finally:
        await owner.execute(f"REVOKE {scratch_role} FROM authenticated")


def test_the_cli_refuses_to_serve_as_a_superuser_in_production(
    server: Server, database: str, tmp_path: Any
) -> None:
    from tests.conftest import JWT_SECRET, render
    from tests.test_cli import assert_one_error_line, cli, free_port

    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "GATEWAY_ENV": "production",
        "JWT_SECRET": JWT_SECRET,
        "DATABASE_URL": render(server.database_url(database)),
    }
    result = cli("serve", "--port", str(free_port()), env=env)
    line = assert_one_error_line(result)
    assert "is a superuser" in line
    assert "row-level security would not apply" in line
    assert "GraphiQL" not in result.stdout
