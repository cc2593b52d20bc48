"""The read engine (``schema.engine``) answers exactly as the per-field resolvers did.

Every query of the corpus runs through the gateway over the same data, and its response must be
the one the per-field resolvers gave before the engine replaced them: same keys in the same
order, same values. Those answers are kept in ``tests/engine_corpus.json`` (recorded from the
resolvers at commit d1de8dd). The data are the same on every run: the factories' ids come from a
seeded generator and the instants the database stamped (``DEFAULT now()``) are set to fixed
ones. The engine's requests must also cost few statements, whatever the page size (one per
entity and level).

A query added to the corpus is recorded with ``ENGINE_CORPUS=record pytest
tests/test_engine.py``, from the engine itself now: read the diff of the corpus before
committing it."""

from __future__ import annotations

import os
import random
import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.graph import R1  # the benchmark's R1 shape
from gateway.auth import viewer_from_header
from gateway.db import SETUP_MARKER, StatementCounter, begin_as
from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.store import select
from schema.engine import cache as plan_cache
from schema.engine.compile import CompileError
from tests import factories
from tests.conftest import bearer
from tests.factories import (
    BASE,
    at,
    insert,
    make_document,
    make_project,
    make_user,
    make_v1_conversation,
    make_v2_conversation,
)
from tests.graphql import codes, gid, gql, ok
from tests.test_statement_count import REFERENCE, arrange

CONVERSATION_SCALARS = (
    "__typename id databaseId source title isActive lastMessageAt createdAt messageCount"
)
V2_CONVERSATION_SCALARS = "conversationType contextMetadata archivedAt documentCount updatedAt"
MESSAGE_SCALARS = "__typename id databaseId source role text conversationTurn createdAt metadata"
V2_MESSAGE_SCALARS = "messageType intentDetected confidenceScore aiModelUsed searchContext"
DOCUMENT = """__typename id databaseId title url createdAt
  city { id databaseId name inseeCode zones { id code label } }
  zoning { id name city { name } } zone { id code label city { name } zoning { name } }
  typology { id databaseId name }"""
PROJECT = """__typename id databaseId name description projectType mainAddress geoLon geoLat
  color icon starred position status pluAlertEnabled pluLastCheckAt pluCheckFrequency createdAt
  updatedAt firstEditedAt metadata owner { id email fullName isAdmin createdAt }
  mainCity { name zones { code } } mainZone { code city { name } } documents { id title }"""

EVERYTHING = f"""
query Everything($first: Int, $after: String, $messages: Int, $filter: ConversationFilter) {{
  conversations(first: $first, after: $after, filter: $filter) {{
    __typename totalCount
    pageInfo {{ __typename hasNextPage startCursor endCursor }}
    edges {{ __typename cursor node {{
      {CONVERSATION_SCALARS}
      owner {{ __typename id databaseId email fullName isAdmin createdAt }}
      documents {{ {DOCUMENT} }}
      ... on V1Conversation {{
        document {{ {DOCUMENT} }}
        migration {{ __typename id databaseId status migratedAt revertedAt errorMessage
          project {{ name }} }}
      }}
      ... on V2Conversation {{ {V2_CONVERSATION_SCALARS} project {{ {PROJECT} }} }}
      messages(first: $messages) {{
        totalCount pageInfo {{ hasNextPage startCursor endCursor }}
        edges {{ cursor node {{
          {MESSAGE_SCALARS}
          author {{ id fullName }}
          replyTo {{ id text replyTo {{ id role }} }}
          documents {{ id title city {{ name }} }}
          ... on V2Message {{ {V2_MESSAGE_SCALARS} referencedZones {{ id code }}
            referencedCities {{ id name }} }}
        }} }}
      }}
    }} }}
  }}
}}
"""

SHAPES = """
query Shapes($withOwner: Boolean!, $skipMessages: Boolean!) {
  a: conversations(first: 3) { edges { node { ...Head owner @include(if: $withOwner) { id } } } }
  b: conversations(first: 2, filter: {source: V1, includeMigrated: true}) {
    edges { node { ...Head ... on V1Conversation { document { title } } } }
    totalCount
  }
  c: conversations(first: 4) {
    edges { node {
      id
      ... on Conversation { t: title, title }
      ... on V2Conversation { p: project { n: name } }
      m: messages(first: 1) @skip(if: $skipMessages) { edges { node { id } } }
    } }
  }
}
fragment Head on Conversation { __typename id title source }
"""

PARTS = """
query Parts {
  total: conversations(first: 1) { totalCount }
  info: conversations(first: 2) { pageInfo { hasNextPage endCursor } }
  cursors: conversations(first: 3) { edges { cursor } }
  none: conversations(first: 3, filter: {lastMessageAfter: "2100-01-01T00:00:00Z"}) {
    totalCount pageInfo { hasNextPage startCursor endCursor } edges { cursor }
  }
  inner: conversations(first: 4) { edges { node {
    a: messages(first: 1) { totalCount }
    b: messages(first: 2) { pageInfo { hasNextPage startCursor } }
    c: messages(first: 3) { edges { cursor } }
  } } }
}
"""


# Statements an engine request may send: one per entity and level (and a count per page).
MAX_READS = 32


@pytest.fixture
async def plans(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(engine, settings) as c:
        yield c


CORPUS = Path(__file__).with_name("engine_corpus.json")
RECORDING = os.environ.get("ENGINE_CORPUS") == "record"


@pytest.fixture(scope="session")
def corpus() -> Iterator[dict[str, str]]:
    answers: dict[str, str] = orjson.loads(CORPUS.read_bytes()) if CORPUS.exists() else {}
    yield answers
    if RECORDING:
        CORPUS.write_bytes(orjson.dumps(answers, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


class Oracle:
    """The resolvers' answers, in the order a test asks its questions."""

    def __init__(self, answers: dict[str, str], test: str, recorder: httpx.AsyncClient):
        self.answers = answers
        self.test = test
        self.recorder = recorder
        self.asked = 0

    async def answer(
        self, query: str, variables: dict[str, Any] | None, *, user: uuid.UUID | None
    ) -> dict[str, Any]:
        key = f"{self.test}#{self.asked}"
        self.asked += 1
        if RECORDING:
            body = await gql(self.recorder, query, variables, user=user)
            self.answers[key] = canonical(body)
        assert key in self.answers, f"{key} is not in {CORPUS.name}: ENGINE_CORPUS=record"
        return orjson.loads(self.answers[key])  # type: ignore[no-any-return]


@pytest.fixture
def resolvers(
    corpus: dict[str, str], request: pytest.FixtureRequest, plans: httpx.AsyncClient
) -> Oracle:
    return Oracle(corpus, request.node.name, plans)


def canonical(body: dict[str, Any]) -> str:
    """The response as JSON text, without the request ids of masked errors."""
    return orjson.dumps(_without_request_ids(body)).decode()


@pytest.fixture(autouse=True)
def seeded_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """The factories' ids from a seeded generator: the same data, in the same order (ties
    of equal instants are broken by id), on every run."""
    rng = random.Random(2026)

    class SeededUuid:
        def __getattr__(self, name: str) -> Any:
            return getattr(uuid, name)

        @staticmethod
        def uuid4() -> uuid.UUID:
            return uuid.UUID(int=rng.getrandbits(128), version=4)

    monkeypatch.setattr(factories, "uuid", SeededUuid())


# Instants the database stamped (``DEFAULT now()``) are later than this; the factories' own
# are around ``factories.BASE``.
STAMPED_AFTER = BASE + timedelta(days=60)


async def settle_clock(owner: asyncpg.Connection) -> None:
    """Every instant the database stamped, set to a fixed one in the same order."""
    columns = await owner.fetch(
        "SELECT table_schema, table_name, column_name FROM information_schema.columns c "
        "WHERE data_type = 'timestamp with time zone' AND table_schema IN ('public', 'analytics')"
        " AND EXISTS (SELECT 1 FROM information_schema.columns i WHERE i.column_name = 'id'"
        " AND (i.table_schema, i.table_name) = (c.table_schema, c.table_name))"
        " ORDER BY 1, 2, 3"
    )
    for c in columns:
        table = f'"{c["table_schema"]}"."{c["table_name"]}"'
        column = f'"{c["column_name"]}"'
        await owner.execute(
            f"UPDATE {table} t SET {column} = $1::timestamptz + r.n * interval '1 second' "
            f"FROM (SELECT id, row_number() OVER (ORDER BY {column}, id) AS n FROM {table} "
            f"WHERE {column} > $1) r WHERE t.id = r.id",
            STAMPED_AFTER,
        )


def _client(engine: AsyncEngine, settings: Settings) -> httpx.AsyncClient:
    app = create_app(settings, engine=engine)
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://gateway.test")


@pytest.fixture
async def data(owner: asyncpg.Connection) -> dict[str, uuid.UUID]:
    """The statement-count fixture plus the awkward values: NULL instants, instants on a whole
    second, equal timestamps, JSON metadata, decimals, scores, referenced zones and cities,
    pinned project documents and a conversation in a project its owner cannot see."""
    admin = await arrange(owner, stray=True)
    user = await make_user(owner, "Bea Bord")
    other = await make_user(owner, "Carl Other")
    city = await insert(owner, "cities", name="Brest", insee_code="29019")
    zoning = await insert(owner, "zonings", city_id=city, name="PLUi")
    zones = [
        await insert(owner, "zones", zoning_id=zoning, city_id=city, code=c, label=f"Zone {c}")
        for c in ("UC", "UA", "UB")
    ]
    document = await make_document(owner, "Règlement Brest", city_id=city, zone_id=zones[0])
    pinned = await make_document(owner, "Plan Brest", city_id=city)
    project = await make_project(
        owner,
        user,
        name="Maison",
        geo_lon=Decimal("-4.4860880"),
        geo_lat=Decimal("48.3903940"),
        metadata='{"b": [1, 2.5, null], "a": {"x": "é"}}',
        status="active",
        starred=True,
        main_city_id=city,
        main_zone_id=zones[1],
        plu_last_check_at=at(0).replace(microsecond=0),
    )
    for doc, is_pinned in ((document, False), (pinned, True)):
        await insert(
            owner, "v2_project_documents", project_id=project, document_id=doc, pinned=is_pinned
        )
    conversation = await make_v2_conversation(
        owner,
        user,
        project_id=project,
        last=None,
        messages=0,
        context_metadata='{"address": "1 rue de Siam"}',
        document_ids=(document, pinned),
    )
    for i, created in enumerate([at(5).replace(microsecond=0), at(5).replace(microsecond=0), None]):
        await insert(
            owner,
            "v2_messages",
            conversation_id=conversation,
            user_id=user,
            role=("user", "assistant", "system")[i],
            message=f"tie {i} \"quoted\" \\ \u2028 émoji 🏠",
            created_at=created,
            metadata='{"k": 1e3}',
            confidence_score=Decimal("0.95") if i == 1 else None,
            search_context='[1, "two"]',
            referenced_zones=[zones[2], zones[0], zones[2]],
            referenced_cities=[city],
            referenced_documents=[pinned, document],
            intent_detected="plu_question",
        )
    await make_v1_conversation(owner, user, last=None, document_id=document, messages=3)
    # A conversation of ``user`` in a project of ``other``: visible, its project is not.
    hidden = await make_project(owner, other, name="Ailleurs")
    await make_v2_conversation(owner, user, project_id=hidden, last=20, messages=1)
    await settle_clock(owner)
    return {"admin": admin, "user": user, "other": other}


async def both(
    plans: httpx.AsyncClient,
    resolvers: Oracle,
    statements: StatementCounter,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    user: uuid.UUID | None,
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The engine's answer, the resolvers' and the engine's read statements."""
    statements.reset()
    planned = await gql(plans, query, variables, user=user)
    reads = statements.reads
    expected = await resolvers.answer(query, variables, user=user)
    return planned, expected, reads


def same(planned: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal answers, keys in the same order (request ids of masked errors aside)."""
    if canonical(planned) != canonical(expected):
        raise AssertionError(f"engine:\n{planned}\n\nresolvers:\n{expected}")


@pytest.mark.parametrize("viewer", ["admin", "user"])
@pytest.mark.parametrize(
    "variables",
    [
        {"first": 50, "messages": 10},
        {"first": 3, "messages": 1},
        {"first": 100, "messages": 100, "filter": {"source": "V2"}},
        {"first": 7, "filter": {"source": "V1", "includeMigrated": True}},
        {"first": 20, "filter": {"isActive": True, "lastMessageAfter": "2026-03-01T08:00:00Z"}},
        {"filter": {"lastMessageBefore": "2026-03-01T12:00:00+02:00"}},
    ],
    ids=["first-50", "small", "v2", "v1", "active-after", "before"],
)
async def test_every_field_equals_the_resolver_path(
    plans: httpx.AsyncClient,
    resolvers: Oracle,
    statements: StatementCounter,
    data: dict[str, uuid.UUID],
    viewer: str,
    variables: dict[str, Any],
) -> None:
    user = data[viewer] if viewer == "admin" else data["user"]
    query = EVERYTHING
    if viewer == "user":
        # ``user`` has a conversation whose project is hidden: that error is tested below.
        query = EVERYTHING.replace(f"project {{ {PROJECT} }}", "")
    planned, expected, reads = await both(plans, resolvers, statements, query, variables, user=user)
    assert "errors" not in expected, expected
    assert expected["data"]["conversations"]["edges"], "the page is empty: the test shows nothing"
    same(planned, expected)
    assert 1 <= reads <= MAX_READS


async def test_pages_follow_the_cursors_of_both_paths(
    plans: httpx.AsyncClient,
    resolvers: Oracle,
    statements: StatementCounter,
    data: dict[str, uuid.UUID],
) -> None:
    after = None
    message_cursor = None
    pages = 0
    while True:
        variables = {"first": 9, "after": after, "messages": 2}
        planned, expected, reads = await both(
            plans, resolvers, statements, EVERYTHING, variables, user=data["admin"]
        )
        same(planned, expected)
        assert 1 <= reads <= MAX_READS
        connection = planned["data"]["conversations"]
        pages += 1
        for edge in connection["edges"]:
            if message_cursor is None and edge["node"]["messages"]["pageInfo"]["hasNextPage"]:
                message_cursor = (edge["node"]["id"], edge["node"]["messages"]["pageInfo"])
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert pages == 8  # 68 conversations visible to the admin by 9
    assert message_cursor is not None
    query = (
        "query M($id: ID!, $after: String) { node(id: $id) { ... on Conversation {"
        " messages(first: 2, after: $after) { edges { node { id } } } } } }"
    )
    _, page, _ = await both(
        plans,
        resolvers,
        statements,
        query,
        {"id": message_cursor[0], "after": message_cursor[1]["endCursor"]},
        user=data["admin"],
    )
    assert page["data"]["node"]["messages"]["edges"], page


WALK = """
query Walk($id: ID!, $after: String) { node(id: $id) { ... on Conversation {
  messages(first: 1, after: $after) {
    pageInfo { hasNextPage endCursor } edges { node { id createdAt } }
  }
} } }
"""


async def test_message_cursors_reach_the_messages_without_an_instant(
    plans: httpx.AsyncClient,
    resolvers: Oracle,
    statements: StatementCounter,
    data: dict[str, uuid.UUID],
) -> None:
    """Messages run oldest first with the ones without ``created_at`` last; walking them one
    page at a time reaches every message, on both paths (an ``after`` cursor of, or before, a
    message without an instant used to select nothing)."""
    listing = await resolvers.answer(
        "{ conversations(first: 50) { edges { node { id"
        " messages(first: 100) { edges { node { id createdAt } } } } } } }",
        None,
        user=data["user"],
    )
    walked_past_null = 0
    for edge in listing["data"]["conversations"]["edges"]:
        expected = [m["node"] for m in edge["node"]["messages"]["edges"]]
        walked: list[dict[str, Any]] = []
        after = None
        while True:
            variables = {"id": edge["node"]["id"], "after": after}
            planned, resolved, reads = await both(
                plans, resolvers, statements, WALK, variables, user=data["user"]
            )
            same(planned, resolved)
            assert 1 <= reads <= MAX_READS
            page = planned["data"]["node"]["messages"]
            walked += [m["node"] for m in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert walked == expected
        # NULLs sort last: a walk of two or more with one reached it through a cursor
        if len(walked) > 1 and any(m["createdAt"] is None for m in walked):
            walked_past_null += 1
    assert walked_past_null, "no conversation with a message without created_at after others"


REPLIES = """
query Replies($id: ID!, $first: Int, $after: String) { node(id: $id) { ... on Conversation {
  messages(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { id replyTo { __typename id databaseId source } } }
  }
} } }
"""


@pytest.mark.parametrize("viewer", ["admin", "user"])
@pytest.mark.parametrize("first", [1, 2, 10])
async def test_reply_targets_in_and_out_of_the_page_equal_the_resolver_path(
    plans: httpx.AsyncClient,
    resolvers: Oracle,
    statements: StatementCounter,
    owner: asyncpg.Connection,
    data: dict[str, uuid.UUID],
    viewer: str,
    first: int,
) -> None:
    """A reply whose target is in the page is answered without a lookup (only the target's
    id is selected); one whose target is on another page, or in a conversation the viewer
    cannot see, is looked up. Both answer as the resolvers do."""
    elsewhere = await make_v1_conversation(owner, data["other"], messages=1)
    hidden = await owner.fetchval(
        "SELECT id FROM chat_messages WHERE conversation_id = $1", elsewhere
    )
    conversation = await make_v1_conversation(owner, data["user"], messages=0)
    targets: list[uuid.UUID | None] = [None, 0, hidden, 0, 2]  # an index: an earlier message
    ids: list[uuid.UUID] = []
    for i, target in enumerate(targets):
        ids.append(
            await insert(
                owner,
                "chat_messages",
                conversation_id=conversation,
                user_id=data["user"],
                role="user",
                message=f"reply {i}",
                reply_to_message_id=ids[target] if isinstance(target, int) else target,
                created_at=at(i),
            )
        )
    await settle_clock(owner)
    user = data["admin"] if viewer == "admin" else data["user"]
    replies: list[dict[str, Any] | None] = []
    after = None
    while True:
        variables = {"id": gid("V1Conversation", conversation), "first": first, "after": after}
        planned, expected, reads = await both(
            plans, resolvers, statements, REPLIES, variables, user=user
        )
        same(planned, expected)
        assert 1 <= reads <= MAX_READS
        page = planned["data"]["node"]["messages"]
        replies += [edge["node"]["replyTo"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    ids_of = [None if r is None else r["databaseId"] for r in replies]
    seen_hidden = str(hidden) if viewer == "admin" else None
    assert ids_of == [None, str(ids[0]), seen_hidden, str(ids[0]), str(ids[2])]
    assert replies[1] == {
        "__typename": "V1Message",
        "id": gid("V1Message", ids[0]),
        "databaseId": str(ids[0]),
        "source": "V1",
    }



@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (REFERENCE, {"first": 50}),
        (REFERENCE, {"first": 10}),
        (R1, {}),
        (SHAPES, {"withOwner": True, "skipMessages": False}),
        (SHAPES, {"withOwner": False, "skipMessages": True}),
        (PARTS, {}),
    ],
    ids=["reference-50", "reference-10", "R1", "shapes", "shapes-directives", "parts"],
)
async def test_reference_shapes_equal_the_resolver_path_in_few_statements(
    plans: httpx.AsyncClient,
    resolvers: Oracle,
    statements: StatementCounter,
    data: dict[str, uuid.UUID],
    query: str,
    variables: dict[str, Any],
) -> None:
    planned, expected, reads = await both(
        plans, resolvers, statements, query, variables, user=data["admin"]
    )
    assert "errors" not in expected, expected
    same(planned, expected)
    assert 1 <= reads <= MAX_READS


@pytest.mark.parametrize(
    "query",
    [
        "{ viewer { id fullName } conversations(first: 2) { totalCount } }",
        "{ conversations(first: 3) { edges { node { ... on V2Conversation {"
        " migratedFrom { id } } } } } }",
        "{ projects(first: 5) { totalCount edges { cursor node { name"
        " conversations(first: 2) { totalCount pageInfo { hasNextPage endCursor }"
        " edges { node { title messages(first: 2) { edges { node { text } } } } } } } } } }",
        "{ cities(first: 3) { totalCount edges { cursor node { name zones { code } } } } }",
        "{ documents(first: 3) { edges { cursor node { title city { name } } } } }",
        "{ chatEvents(first: 3) { totalCount edges { node { source } } } }",
        "{ chatEventStats(groupBy: [SOURCE]) { source events tokensTotal costTotal } }",
        "{ migrationReport { ok notMigrated statuses { status count } } }",
    ],
    ids=["viewer", "migrated-from", "projects", "cities", "documents", "events", "stats",
         "report"],
)
async def test_every_root_field_equals_the_resolver_path(
    plans: httpx.AsyncClient,
    resolvers: Oracle,
    statements: StatementCounter,
    data: dict[str, uuid.UUID],
    query: str,
) -> None:
    planned, expected, reads = await both(plans, resolvers, statements, query, user=data["user"])
    assert "errors" not in expected, expected
    same(planned, expected)
    assert reads <= MAX_READS


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("{ conversations(first: 0) { totalCount } }", ["conversations"]),
        ('{ conversations(after: "bm9wZQ") { totalCount } }', ["conversations"]),
        ('{ conversations(filter: {ownerId: "bm9wZQ"}) { totalCount } }', ["conversations"]),
        (
            "{ conversations(first: 3) { edges { node {"
            " messages(first: 101) { totalCount } } } } }",
            ["conversations", "edges", "node", "messages"],
        ),
    ],
    ids=["first", "cursor", "id", "nested-first"],
)
async def test_a_refused_argument_at_any_depth_sends_no_sql(
    plans: httpx.AsyncClient,
    resolvers: Oracle,
    statements: StatementCounter,
    data: dict[str, uuid.UUID],
    query: str,
    path: list[str],
) -> None:
    planned, expected, reads = await both(
        plans, resolvers, statements, query, user=data["admin"]
    )
    # then the engine refuses it as the resolvers did, but before any statement
    [error] = planned["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == expected["errors"][0]["message"]
    assert error["path"] == path
    assert planned["data"] is None
    assert reads == 0


async def test_a_hidden_non_null_project_gets_the_resolver_paths_error(
    plans: httpx.AsyncClient,
    resolvers: Oracle,
    statements: StatementCounter,
    data: dict[str, uuid.UUID],
) -> None:
    # given a visible conversation whose project the viewer cannot see (Project! is non-null)
    query = (
        "{ conversations(first: 50) { edges { node {"
        " id ... on V2Conversation { project { name } } } } } }"
    )
    planned, expected, _ = await both(plans, resolvers, statements, query, user=data["user"])
    # then the plan's answer is discarded and the resolvers' error and nulls are returned
    assert expected["errors"], expected
    assert expected["data"] is None
    same(_without_request_ids(planned), _without_request_ids(expected))


NODE_SELECTION = f"""
  __typename id
  ... on Conversation {{ {CONVERSATION_SCALARS} owner {{ id }}
    messages(first: 2) {{ totalCount }} }}
  ... on V2Conversation {{ project {{ name }} }}
  ... on V1Conversation {{ document {{ title }} migration {{ status }} }}
  ... on Message {{ {MESSAGE_SCALARS} author {{ fullName }} replyTo {{ id }} }}
  ... on V2Message {{ {V2_MESSAGE_SCALARS} referencedZones {{ code }} }}
  ... on Project {{ {PROJECT} }}
  ... on Document {{ {DOCUMENT} }}
  ... on City {{ name zones {{ code }} }}
  ... on Zoning {{ name city {{ name }} }}
  ... on Zone {{ code label city {{ name }} zoning {{ name }} }}
  ... on Typology {{ name }}
  ... on Profile {{ email fullName isAdmin createdAt }}
  ... on Migration {{ migrationStatus: status migratedAt revertedAt errorMessage
    of: project {{ name }} }}
"""
NODE_TABLES = {
    "V1Conversation": "chat_conversations",
    "V2Conversation": "v2_conversations c WHERE EXISTS (SELECT 1 FROM v2_projects p"
    " WHERE p.id = c.project_id AND p.user_id = c.user_id)",  # not the hidden project's
    "V1Message": "chat_messages", "V2Message": "v2_messages", "Project": "v2_projects",
    "City": "cities", "Zoning": "zonings", "Zone": "zones", "Typology": "typologies",
    "Document": "documents", "Profile": "profiles", "Migration": "migration_tracking",
}


@pytest.mark.parametrize("viewer", ["admin", "user"])
async def test_node_and_nodes_equal_the_resolver_path(
    plans: httpx.AsyncClient,
    resolvers: Oracle,
    statements: StatementCounter,
    data: dict[str, uuid.UUID],
    owner: asyncpg.Connection,
    viewer: str,
) -> None:
    # given two rows of every planned node type (some not visible to ``user``) and a missing id
    ids = [gid(t, uuid.UUID(int=n)) for n, t in enumerate(("V2Conversation", "City"))]
    for type_name, table in NODE_TABLES.items():
        for row in await owner.fetch(f"SELECT id FROM {table} ORDER BY id LIMIT 2"):
            ids.append(gid(type_name, row["id"]))
    user = data[viewer]
    # when they are asked for together and one by one
    query = f"query N($ids: [ID!]!) {{ nodes(ids: $ids) {{ {NODE_SELECTION} }} }}"
    planned, expected, reads = await both(
        plans, resolvers, statements, query, {"ids": ids[:50]}, user=user
    )
    # then both paths agree, in one statement
    assert "errors" not in expected, expected
    assert sum(n is not None for n in expected["data"]["nodes"]) >= 10
    same(planned, expected)
    assert 1 <= reads <= MAX_READS
    single = f"query N($id: ID!) {{ node(id: $id) {{ {NODE_SELECTION} }} }}"
    for node_id in ids:
        planned, expected, reads = await both(
            plans, resolvers, statements, single, {"id": node_id}, user=user
        )
        same(planned, expected)
        assert 1 <= reads <= MAX_READS


async def test_anonymous_viewers_get_the_empty_listing(
    plans: httpx.AsyncClient,
    resolvers: Oracle,
    statements: StatementCounter,
    data: dict[str, uuid.UUID],
) -> None:
    planned, expected, _ = await both(plans, resolvers, statements, R1, user=None)
    same(planned, expected)
    assert planned == {"data": {"conversations": {"edges": []}}}


def _without_request_ids(body: dict[str, Any]) -> dict[str, Any]:
    for error in body.get("errors") or []:
        error.get("extensions", {}).pop("requestId", None)
        error["message"] = error["message"].split(" (request ")[0]
    return body


# -- random selections -------------------------------------------------------------------------

LEAVES = {
    "Conversation": CONVERSATION_SCALARS.split(),
    "V1Conversation": ["id", "title"],
    "V2Conversation": V2_CONVERSATION_SCALARS.split(),
    "Message": MESSAGE_SCALARS.split(),
    "V2Message": V2_MESSAGE_SCALARS.split(),
    "Document": ["id", "title", "url", "createdAt", "__typename"],
    "City": ["id", "name", "inseeCode"],
    "Zone": ["id", "code", "label"],
    "Zoning": ["id", "name"],
    "Typology": ["id", "name"],
    "Profile": ["id", "email", "fullName", "isAdmin", "createdAt"],
    "Project": PROJECT.split("owner")[0].split(),
    "Migration": ["id", "status", "migratedAt", "revertedAt", "errorMessage"],
}
OBJECTS = {
    "Conversation": [("owner", "Profile"), ("documents", "Document"), ("messages", "Messages")],
    "V1Conversation": [("document", "Document"), ("migration", "Migration")],
    "V2Conversation": [("project", "Project")],
    "Message": [("author", "Profile"), ("replyTo", "Message"), ("documents", "Document")],
    "V2Message": [("referencedZones", "Zone"), ("referencedCities", "City")],
    "Document": [
        ("city", "City"), ("zone", "Zone"), ("zoning", "Zoning"), ("typology", "Typology")
    ],
    "City": [("zones", "Zone")],
    "Zone": [("city", "City"), ("zoning", "Zoning")],
    "Zoning": [("city", "City")],
    "Project": [("owner", "Profile"), ("mainCity", "City"), ("mainZone", "Zone"),
                ("documents", "Document")],
    "Migration": [("project", "Project")],
}
SUBTYPES = {"Conversation": ["V1Conversation", "V2Conversation"], "Message": ["V2Message"]}


def selection(rng: random.Random, type_name: str, depth: int) -> str:
    if type_name == "Messages":
        first = rng.choice(["", "(first: 1)", "(first: 3)"])
        page = rng.choice(["totalCount", "pageInfo { hasNextPage endCursor }", ""])
        node = selection(rng, "Message", depth)
        cursor = rng.choice(["cursor", ""])
        return f"messages{first} {{ {page} edges {{ {cursor} node {{ {node} }} }} }}"
    leaves = LEAVES[type_name]
    parts = [f"{rng.choice(['', 'x: ', 'y: '])}{f}" if f != "__typename" else f
             for f in rng.sample(leaves, k=rng.randint(1, min(4, len(leaves))))]
    parts = list(dict.fromkeys(parts))
    if depth > 0:
        for name, target in OBJECTS.get(type_name, []):
            if rng.random() < 0.35:
                if target == "Messages":
                    parts.append(selection(rng, "Messages", depth - 1))
                else:
                    parts.append(f"{name} {{ {selection(rng, target, depth - 1)} }}")
        for sub in SUBTYPES.get(type_name, []):
            if rng.random() < 0.5:
                parts.append(f"... on {sub} {{ {selection(rng, sub, depth)} }}")
    return " ".join(_unique_aliases(parts))


def _unique_aliases(parts: list[str]) -> list[str]:
    """Drop aliased leaves whose alias is already used (x: title and x: text would conflict)."""
    seen: set[str] = set()
    kept = []
    for part in parts:
        alias = part.split(":")[0] if part[:3] in ("x: ", "y: ") else None
        if alias is not None:
            if alias in seen:
                continue
            seen.add(alias)
        kept.append(part)
    return kept


@pytest.mark.parametrize("seed", range(12))
async def test_random_selections_equal_the_resolver_path(
    plans: httpx.AsyncClient,
    resolvers: Oracle,
    statements: StatementCounter,
    data: dict[str, uuid.UUID],
    seed: int,
) -> None:
    rng = random.Random(seed)
    for _ in range(5):
        node = selection(rng, "Conversation", depth=3)
        first = rng.choice([1, 5, 20, 70])
        query = (
            f"{{ conversations(first: {first}) {{ totalCount"
            f" edges {{ cursor node {{ {node} }} }} }} }}"
        )
        planned, expected, reads = await both(
            plans, resolvers, statements, query, user=data["admin"]
        )
        if "errors" in expected and "Fields" in str(expected["errors"]):
            continue  # an alias conflict between sibling fragments: not a valid query
        assert "errors" not in expected, (query, expected)
        same(planned, expected)
        assert 1 <= reads <= MAX_READS, query


MIGRATE = """
mutation Migrate($id: ID!) {
  migrateConversation(input: {conversationId: $id}) {
    __typename alreadyMigrated
    migration { __typename id status migratedAt revertedAt errorMessage
      v1Conversation { id title messageCount } project { id name status } }
    conversation { id title messageCount documentCount owner { fullName }
      migratedFrom { id title }
      messages(first: 3) { totalCount edges { cursor node { id role text
        replyTo { id text } documents { title } } } } }
    project { id name status conversations(first: 2) { totalCount edges { node { id } } } }
  }
}
"""


async def test_a_mutation_payload_is_read_like_any_row(
    plans: httpx.AsyncClient,
    statements: StatementCounter,
    owner: asyncpg.Connection,
    data: dict[str, uuid.UUID],
) -> None:
    # given a v1 conversation with a document and four messages
    document = await make_document(owner, "Plan local")
    conversation = await make_v1_conversation(
        owner, data["user"], document_id=document, messages=4
    )
    variables = {"id": gid("V1Conversation", conversation)}

    # when it is migrated, then migrated again (a repeat answers with the first result)
    statements.reset()
    first = await gql(plans, MIGRATE, variables, user=data["user"])
    again = await gql(plans, MIGRATE, variables, user=data["user"])

    # then the payload reaches the copy, its project and messages, the same both times
    assert "errors" not in first, first
    payload = first["data"]["migrateConversation"]
    assert payload.pop("alreadyMigrated") is False
    assert again["data"]["migrateConversation"].pop("alreadyMigrated") is True
    same(again, first)
    copy = payload["conversation"]
    assert copy["migratedFrom"]["id"] == variables["id"]
    assert copy["messages"]["totalCount"] == copy["messageCount"] == 4
    assert [d["title"] for d in copy["messages"]["edges"][0]["node"]["documents"]] in (
        [],
        ["Plan local"],
    )
    assert payload["migration"]["status"] == "COMPLETED"
    assert payload["project"]["status"] == "DRAFT"
    assert payload["project"]["conversations"]["edges"] == [{"node": {"id": copy["id"]}}]
    assert statements.reads <= 2 * MAX_READS


async def test_a_refused_mutation_writes_nothing_and_reads_no_payload(
    plans: httpx.AsyncClient, statements: StatementCounter, data: dict[str, uuid.UUID]
) -> None:
    # given an id of the wrong type
    variables = {"id": gid("Project", uuid.uuid4())}
    statements.reset()
    body = await gql(plans, MIGRATE, variables, user=data["user"])
    # then BAD_USER_INPUT at the field, no data, and no statement at all
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == ["migrateConversation"]
    assert body["data"] is None
    assert statements.total == 0


async def test_aliases_of_node_and_edges_keep_their_own_selections(
    plans: httpx.AsyncClient, data: dict[str, uuid.UUID]
) -> None:
    body = await gql(
        plans,
        "{ cities(first: 2) { edges { a: node { name } b: node { id } }"
        " e: edges { node { inseeCode } } } }",
        user=data["user"],
    )
    cities = ok(body)["cities"]
    assert all(set(edge["a"]) == {"name"} and set(edge["b"]) == {"id"} for edge in cities["edges"])
    assert all(set(edge["node"]) == {"inseeCode"} for edge in cities["e"])
    assert cities["edges"][0]["a"]["name"]


async def test_introspection_beside_data_fields_answers_both(
    plans: httpx.AsyncClient, data: dict[str, uuid.UUID]
) -> None:
    body = await gql(
        plans,
        "{ cities(first: 1) { totalCount } __schema { queryType { name } }"
        " viewer { fullName } __typename }",
        user=data["user"],
    )
    assert ok(body) == {
        "cities": {"totalCount": ok(body)["cities"]["totalCount"]},
        "__schema": {"queryType": {"name": "Query"}},
        "viewer": {"fullName": "Bea Bord"},
        "__typename": "Query",
    }
    assert list(ok(body)) == ["cities", "__schema", "viewer", "__typename"]


async def test_a_listed_row_gone_before_it_is_read_is_a_located_error(
    plans: httpx.AsyncClient, data: dict[str, uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing of both stores reads the keys, then the rows: a row deleted in between is
    a null node (an error at its path, as GraphQL says for a non-null field), never a crash of
    the request. (A listing of one store reads its rows in the same statement.)"""
    by_ids, by_ids_together = select.by_ids, select.by_ids_together

    async def losing_one(*args: Any, **kwargs: Any) -> list[Any]:
        return (await by_ids(*args, **kwargs))[1:]

    async def losing_one_each(*args: Any, **kwargs: Any) -> list[list[Any]]:
        return [rows[1:] for rows in await by_ids_together(*args, **kwargs)]

    monkeypatch.setattr(select, "by_ids", losing_one)
    monkeypatch.setattr(select, "by_ids_together", losing_one_each)
    body = await gql(
        plans,
        "{ conversations(first: 3) { edges { cursor node { id } }"
        " pageInfo { startCursor endCursor } } }",
        user=data["user"],
    )
    [error] = body["errors"]
    assert error["path"][:2] == ["conversations", "edges"]
    assert error["path"][3:] == ["node"]
    assert body["data"] is None


async def test_a_refused_document_is_remembered_without_the_requests_that_sent_it(
    plans: httpx.AsyncClient, data: dict[str, uuid.UUID]
) -> None:
    query = "{ projects(first: 500) { totalCount } }"
    for _ in range(3):
        body = await gql(plans, query, user=data["user"])
        assert codes(body) == ["BAD_USER_INPUT"]
    refused = [entry[2] for entry in plan_cache._plans.values()
               if isinstance(entry[2], CompileError)]
    assert refused
    assert all(r.__traceback__ is None and r.error.__traceback__ is None for r in refused)


FAILING = "{ conversations(first: 2) { edges { node { messages { totalCount } } } } }"


async def test_a_failed_load_below_the_root_is_a_masked_graphql_error(
    plans: httpx.AsyncClient, data: dict[str, uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement of a lower level that fails (a timeout, a dropped connection) answers the
    request with a coded error, never a bare 500."""

    async def failing(*_args: Any, **_kwargs: Any) -> list[Any]:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(select, "pages", failing)
    response = await plans.post(
        "/graphql",
        json={"query": FAILING},
        headers=bearer(str(data["user"])),
    )
    assert response.status_code == 200
    body = response.json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INTERNAL"
    assert error["path"] == ["conversations"]
    assert "went away" not in response.text
    assert body["data"] is None


class _Driver:
    """``Db.fetch`` over a plain asyncpg connection (one that has decoded nothing yet)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def fetch(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        from gateway.db.connection import positional

        query, names = positional(sql)
        return list(await self.conn.fetch(query, *[(params or {})[n] for n in names]))


async def test_every_declared_column_reads_alike_in_a_shared_statement(
    data: dict[str, uuid.UUID], server: Any, database: str
) -> None:
    """Small reads of several types share a statement, their rows as records in arrays
    (``select.by_ids_together``); asyncpg decodes a record's fields by the types it knows, so
    every declared column of every type, as it is stored and as the engine selects it
    (``compile.read_as``: instants in text form; ``select.key``/``keys``: keys as text), must
    come back as ``by_ids`` returns it, on a connection that has decoded nothing before."""
    from gateway.store.graph import ENTITIES, Scalar, ToMany, ToOne
    from schema import build_schema
    from schema.engine.compile import read_as

    types = build_schema()._schema.type_map
    conn = await server.connect(database)
    try:
        wanted = []
        for name, entity in ENTITIES.items():
            fields = types[name].fields  # type: ignore[attr-defined]
            columns = [
                column
                for key, f in entity.fields.items()
                if isinstance(f, (Scalar, ToOne, ToMany))
                for column in (
                    (f.sql, read_as(f, fields[key].type)[0]) if isinstance(f, Scalar)
                    else (f.key, select.key(f.key)) if isinstance(f, ToOne)
                    else (f.keys, select.keys(f.keys))
                )
            ]
            ids = [r[0] for r in await conn.fetch(f"SELECT id FROM {entity.table} LIMIT 3")]
            wanted.append((entity, columns, ids))
        assert sum(1 for _, _, ids in wanted if ids) >= 12  # the fixture fills most types
        together = await select.by_ids_together(_Driver(conn), wanted)
        for (entity, columns, ids), rows in zip(wanted, together, strict=True):
            alone = await select.by_ids(_Driver(conn), entity, columns, ids)
            by_id = {r[0]: tuple(r) for r in alone}
            assert len(rows) == len(ids) and {r[0]: r for r in rows} == by_id, entity.table
    finally:
        await conn.close()


async def test_a_node_querys_plan_is_reused_for_other_ids_of_the_same_types(
    plans: httpx.AsyncClient, data: dict[str, uuid.UUID], owner: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``node(id:)`` plans are remembered per type of the ids, not per id: each request still
    answers for its own ids."""
    document = "query N($id: ID!) { node(id: $id) { id __typename ... on Conversation { title } } }"
    monkeypatch.setattr(plan_cache, "_plans", OrderedDict())  # whatever ran before
    v2 = [r["id"] for r in await owner.fetch("SELECT id FROM v2_conversations LIMIT 3")]
    v1 = [r["id"] for r in await owner.fetch("SELECT id FROM chat_conversations LIMIT 2")]
    before = len(plan_cache._plans)
    asked = [gid("V2Conversation", i) for i in v2] + [gid("V1Conversation", i) for i in v1]
    for wanted in asked:
        body = ok(await gql(plans, document, {"id": wanted}, user=data["admin"]))
        assert body["node"]["id"] == wanted
    assert len(plan_cache._plans) == before + 2  # one plan per type
    many = "query M($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    for ids in (asked[:2], asked[1:3], asked[3:5], [asked[0], asked[4]]):
        body = ok(await gql(plans, many, {"ids": ids}, user=data["admin"]))
        assert [n["id"] for n in body["nodes"]] == ids
    refused = await gql(plans, document, {"id": "not an id"}, user=data["admin"])
    assert codes(refused) == ["BAD_USER_INPUT"]


async def test_operations_by_key_or_without_parameters_take_generic_plans(
    plans: httpx.AsyncClient, data: dict[str, uuid.UUID], owner: asyncpg.Connection,
    statements: StatementCounter,
) -> None:
    """A transaction whose statements all go by key, or are root listings without a filter
    value or a cursor (their page size written into the statement), asks PostgreSQL for
    generic plans (its custom plans cost more to make than to run); one with statistics, or a
    listing with a filter value or a cursor, keeps the server's choice. (The corpus above
    checks the answers of every kind.)"""
    conversation = await owner.fetchval("SELECT id FROM v2_conversations LIMIT 1")
    by_key = (
        "query K($id: ID!) { node(id: $id) { id ... on V2Conversation { title messages(first: 2)"
        " { totalCount edges { node { text } } } } } viewer { id } }"
    )
    listing = (
        "query L($after: String, $filter: ConversationFilter) { conversations(first: 2, "
        "after: $after, filter: $filter) { totalCount edges { cursor node { id } } } }"
    )
    first_page = ok(await gql(plans, listing, None, user=data["admin"]))
    cursor = first_page["conversations"]["edges"][-1]["cursor"]
    owner_filter = {"ownerId": gid("Profile", data["user"])}
    stats = "{ chatEventStats(groupBy: [SOURCE]) { source events } }"
    projects = "{ projects(first: 2) { totalCount edges { node { name } } } }"
    for query, variables, generic in (
        (by_key, {"id": gid("V2Conversation", conversation)}, True),
        (listing, None, True),
        (listing, {"filter": {"source": "V2", "includeMigrated": True}}, True),
        (listing, {"after": cursor}, False),
        (listing, {"filter": owner_filter}, False),
        (projects, None, True),
        (stats, None, False),
    ):
        statements.reset()
        ok(await gql(plans, query, variables, user=data["admin"]))
        (setup,) = [s for s in statements.statements if SETUP_MARKER in s]
        assert ("force_generic_plan" in setup) is generic, (query, variables, setup)
        if generic:  # its listing without parameters; a statement with some reads by key
            sent = statements.read_statements()
            assert sent
            for statement, args in sent:
                if args:
                    assert "= ANY(" in statement or "unnest(" in statement, statement
                elif "ORDER BY" in statement:
                    assert "LIMIT 2" in statement or "LIMIT 3" in statement, statement


async def test_a_listing_without_parameters_plans_its_page_size(
    plans: httpx.AsyncClient, data: dict[str, uuid.UUID], owner: asyncpg.Connection,
    statements: StatementCounter, settings: Settings,
) -> None:
    """The first page of conversations has its page size in its statement, and no parameter:
    whatever the transaction's plan mode, it is planned for its page, the rows of the page
    joined by their key, not a join over every conversation (a generic plan of ``LIMIT $1``
    guessed a tenth of the table)."""
    await owner.execute(
        "INSERT INTO v2_conversations (user_id, project_id, title, last_message_at) "
        "SELECT c.user_id, c.project_id, 'Plus', now() - g * interval '1 minute' "
        "FROM (SELECT * FROM v2_conversations LIMIT 1) c, generate_series(1, 2000) g; "
        "ANALYZE v2_conversations; ANALYZE chat_conversations"
    )
    for source in ("V2", None):
        statements.reset()
        variables = {"filter": {"source": source}} if source else None
        query = (
            "query L($filter: ConversationFilter) { conversations(first: 3, filter: $filter) "
            "{ edges { node { id title } } } }"
        )
        ok(await gql(plans, query, variables, user=data["admin"]))
        statement, args = statements.read_statements()[0]
        assert args == () and "LIMIT 3" in statement, statement
        viewer = viewer_from_header(bearer(str(data["admin"]))["Authorization"], settings)
        try:
            await owner.execute(begin_as(viewer, settings, generic_plans=True))
            plan = "\n".join(
                r[0] for r in await owner.fetch("EXPLAIN (COSTS OFF) " + statement)
            )
        finally:
            await owner.execute("ROLLBACK")
        # (row-level security's subplans may scan; the listing's own tables, c and t, not)
        assert not re.search(r"Seq Scan on \w+ [ct]$", plan, re.MULTILINE), plan
        assert "Hash Join" not in plan, plan


async def test_a_reply_to_a_message_of_the_same_page_costs_no_statement(
    plans: httpx.AsyncClient, data: dict[str, uuid.UUID], owner: asyncpg.Connection,
    statements: StatementCounter,
) -> None:
    """Page rows are remembered by id only when something in the operation looks their type up
    by id (``OperationPlan.by_id``): a reply to a message of the same page is then found, not
    read again; without a ``replyTo`` they are only written."""
    conversation = await factories.make_v2_conversation(owner, data["user"], messages=3)
    first, second = [r["id"] for r in await owner.fetch(
        "SELECT id FROM v2_messages WHERE conversation_id = $1 ORDER BY conversation_turn "
        "LIMIT 2", conversation)]
    await owner.execute(
        "UPDATE v2_messages SET reply_to_message_id = $1 WHERE id = $2", first, second
    )
    query = (
        "query R($id: ID!) { node(id: $id) { ... on V2Conversation { messages(first: 10) {"
        " edges { node { id %s } } } } } }"
    )
    for selection, replies in (("replyTo { id }", True), ("", False)):
        statements.reset()
        body = ok(await gql(plans, query % selection, {"id": gid("V2Conversation", conversation)},
                            user=data["user"]))
        nodes = [e["node"] for e in body["node"]["messages"]["edges"]]
        assert len(nodes) == 3
        if replies:
            assert nodes[1]["replyTo"] == {"id": nodes[0]["id"]}
        assert statements.reads == 2, statements.statements  # the conversation, its page


@pytest.mark.parametrize("selection", ["node", "nodes"])
async def test_a_null_in_a_non_null_field_nulls_up_to_the_nearest_nullable_parent(
    plans: httpx.AsyncClient, data: dict[str, uuid.UUID], owner: asyncpg.Connection,
    selection: str,
) -> None:
    # given a conversation whose second message holds a role the graph cannot write (its
    # check dropped: the writer meets a null in the non-null ``role``)
    conversation, user = await owner.fetchrow(
        "SELECT c.id, c.user_id FROM v2_conversations c WHERE (SELECT count(*) FROM v2_messages"
        " m WHERE m.conversation_id = c.id) >= 3 ORDER BY c.id LIMIT 1"
    )
    await owner.execute("ALTER TABLE v2_messages DROP CONSTRAINT v2_messages_role_check")
    await owner.execute(
        "UPDATE v2_messages SET role = 'robot' WHERE id = (SELECT id FROM v2_messages"
        " WHERE conversation_id = $1 ORDER BY created_at, id OFFSET 1 LIMIT 1)",
        conversation,
    )
    page = "messages(first: 3) { edges { node { role text } } }"
    wrapped = {"node": "node(id: $id)", "nodes": "nodes(ids: [$id])"}[selection]
    query = f"query N($id: ID!) {{ {wrapped} {{ ... on V2Conversation {{ title {page} }} }} }}"
    # when it is read
    body = await gql(plans, query, {"id": gid("V2Conversation", conversation)}, user=user)
    # then the error (the server's fault: masked) is at the role's path, and every non-null
    # field above it is null up to the nullable one: the node (a ``nodes`` item is nullable)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INTERNAL"
    at = [selection] + ([0] if selection == "nodes" else [])
    assert error["path"] == [*at, "messages", "edges", 1, "node", "role"]
    assert body["data"] == {selection: None if selection == "node" else [None]}
    # and the other messages of a page are written as they are
    ok(await gql(plans, query.replace("first: 3", "first: 1"),
                 {"id": gid("V2Conversation", conversation)}, user=user))
