"""``Query.conversations``: one keyset-paginated listing over the v1 and v2 stores (issue
"unified graph"), checked against plain SQL over both tables."""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from gateway.db import StatementCounter
from tests.factories import (
    at,
    insert,
    make_document,
    make_project,
    make_user,
    make_v1_conversation,
    make_v2_conversation,
)
from tests.graphql import codes, gid, gql

CONVERSATIONS = """
query Conversations($first: Int, $after: String, $filter: ConversationFilter) {
  conversations(first: $first, after: $after, filter: $filter) {
    totalCount
    edges { cursor node { __typename id databaseId source lastMessageAt createdAt isActive } }
    pageInfo { hasNextPage endCursor startCursor }
  }
}
"""

MESSAGES_CURSOR = """
query MessagesCursor {
  conversations(first: 1) { edges { node { messages(first: 1) { pageInfo { endCursor } } } } }
}
"""

CITIES_CURSOR = """
query CitiesCursor { cities(first: 1) { pageInfo { endCursor } } }
"""

# Every conversation of a user, ordered as DESIGN §7 says.
EXPECTED_ORDER = """
SELECT id, source, last_message_at FROM (
  SELECT id, 'V1' AS source, last_message_at, user_id FROM chat_conversations
  UNION ALL
  SELECT id, 'V2' AS source, last_message_at, user_id FROM v2_conversations
) u
WHERE $1::uuid IS NULL OR user_id = $1::uuid
ORDER BY last_message_at DESC NULLS LAST, id DESC
"""

ISO_WITH_MICROSECONDS_AND_OFFSET = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$"
)





def ids_of(connection: dict[str, Any]) -> list[str]:
    return [e["node"]["databaseId"] for e in connection["edges"]]


async def expected_ids(conn: asyncpg.Connection, user: uuid.UUID | None) -> list[str]:
    return [str(r["id"]) for r in await conn.fetch(EXPECTED_ORDER, user)]


async def page_through(
    client: httpx.AsyncClient,
    user: uuid.UUID,
    *,
    first: int = 3,
    filter: dict[str, Any] | None = None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """All database ids of the listing, page by page, and every page's connection."""
    seen: list[str] = []
    pages: list[dict[str, Any]] = []
    after = None
    while True:
        body = await gql(
            client, CONVERSATIONS, {"first": first, "after": after, "filter": filter}, user=user
        )
        assert "errors" not in body, body
        connection = body["data"]["conversations"]
        pages.append(connection)
        seen += ids_of(connection)
        if not connection["pageInfo"]["hasNextPage"]:
            return seen, pages
        after = connection["pageInfo"]["endCursor"]
        assert len(pages) < 50, "paging does not end"


@dataclass
class World:
    alice: uuid.UUID
    bob: uuid.UUID
    admin: uuid.UUID


@pytest.fixture
async def world(owner: asyncpg.Connection) -> World:
    """Alice and Bob each own 11 conversations, v1 and v2 interleaved in time, with equal
    ``last_message_at`` values inside and across the stores and one NULL per store for Alice."""
    alice = await make_user(owner, "Alice Dupont")
    bob = await make_user(owner, "Bob Durand")
    admin = await make_user(owner, "Admin Istrateur", is_admin=True)
    for user, shift in ((alice, 0), (bob, 0.5)):
        # v1 at 0, -2, -4, -6, -8 ; v2 at -1, -3, -5, -7, -9 (Bob half a minute later)
        for i in range(5):
            await make_v1_conversation(owner, user, last=-2 * i + shift, messages=1)
            await make_v2_conversation(owner, user, last=-2 * i - 1 + shift, messages=1)
        # ties: three conversations (both stores) share one timestamp
        await make_v1_conversation(owner, user, last=-20 + shift)
        await make_v2_conversation(owner, user, last=-20 + shift)
        await make_v1_conversation(owner, user, last=-20 + shift)
    # Alice's conversations without activity (NULL sorts last, then by id)
    await make_v1_conversation(owner, alice, last=None)
    await make_v2_conversation(owner, alice, last=None)
    return World(alice=alice, bob=bob, admin=admin)


# --- ordering and paging ------------------------------------------------------------------


async def test_paging_as_a_user_matches_sql_over_both_tables(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # given Alice's 15 conversations in both stores (ties and NULLs included)
    expected = await expected_ids(owner, world.alice)
    assert len(expected) == 15

    # when she pages through them three at a time
    seen, pages = await page_through(client, world.alice, first=3)

    # then she gets exactly her rows, in the SQL order, and the full count on every page
    assert seen == expected
    assert [len(p["edges"]) for p in pages] == [3, 3, 3, 3, 3]
    assert all(p["totalCount"] == 15 for p in pages)
    assert [p["pageInfo"]["hasNextPage"] for p in pages] == [True] * 4 + [False]
    for p in pages:
        assert p["pageInfo"]["endCursor"] == p["edges"][-1]["cursor"]
        assert p["pageInfo"]["startCursor"] == p["edges"][0]["cursor"]


async def test_both_stores_are_tagged_and_interleaved(
    client: httpx.AsyncClient, world: World
) -> None:
    # given Alice's interleaved conversations, when she asks for the first four
    body = await gql(client, CONVERSATIONS, {"first": 4}, user=world.alice)

    # then they alternate between the stores, each tagged with its source and type
    assert "errors" not in body, body
    nodes = [e["node"] for e in body["data"]["conversations"]["edges"]]
    assert [n["source"] for n in nodes] == ["V1", "V2", "V1", "V2"]
    assert [n["__typename"] for n in nodes] == [
        "V1Conversation",
        "V2Conversation",
        "V1Conversation",
        "V2Conversation",
    ]
    for n in nodes:
        assert n["id"] == gid(n["__typename"], uuid.UUID(n["databaseId"]))


async def test_admin_sees_every_users_rows(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # given both users' conversations
    expected = await expected_ids(owner, None)
    assert len(expected) == 15 + 13

    # when the admin pages through the listing
    seen, pages = await page_through(client, world.admin, first=3)

    # then both users' rows come, in SQL order, with the full count on every page
    assert seen == expected
    assert all(p["totalCount"] == 28 for p in pages)


async def test_bob_does_not_see_alices_rows(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # when Bob pages through the listing
    seen, pages = await page_through(client, world.bob, first=5)

    # then he sees exactly his 13 conversations
    assert seen == await expected_ids(owner, world.bob)
    assert all(p["totalCount"] == 13 for p in pages)


async def test_ties_on_microseconds_are_kept_by_cursors(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    # given conversations a microsecond apart and two with the very same instant
    user = await make_user(owner)
    base = at(0)
    for delta in (0, 1, 1, 2, 999):
        await insert(
            owner,
            "chat_conversations",
            user_id=user,
            last_message_at=base + timedelta(microseconds=delta),
        )

    # when the user pages one row at a time
    seen, _ = await page_through(client, user, first=1)

    # then every row comes once, in SQL order
    assert seen == await expected_ids(owner, user)
    assert len(set(seen)) == 5


async def test_inserts_between_pages_neither_skip_nor_repeat_rows(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # given Alice's listing and its first page
    original = await expected_ids(owner, world.alice)
    body = await gql(client, CONVERSATIONS, {"first": 3}, user=world.alice)
    assert "errors" not in body, body
    first_page = body["data"]["conversations"]
    cursor_row = first_page["edges"][-1]["node"]
    cursor_id = uuid.UUID(cursor_row["databaseId"])
    cursor_at = await owner.fetchval(
        "SELECT last_message_at FROM chat_conversations WHERE id = $1 "
        "UNION ALL SELECT last_message_at FROM v2_conversations WHERE id = $1",
        cursor_id,
    )

    # when conversations are inserted before and after the cursor position
    newer = [
        await make_v1_conversation(owner, world.alice, last=500),
        await make_v2_conversation(owner, world.alice, last=400),
    ]
    older = [
        await make_v1_conversation(owner, world.alice, last=-5.5),
        await make_v2_conversation(owner, world.alice, last=-100),
        await make_v2_conversation(owner, world.alice, last=None),
    ]
    # ... and at the cursor's very instant, on both sides of its id
    above = uuid.UUID(int=(1 << 128) - 1)
    below = uuid.UUID(int=0)
    await insert(
        owner, "chat_conversations", id=above, user_id=world.alice, last_message_at=cursor_at
    )
    await insert(
        owner, "chat_conversations", id=below, user_id=world.alice, last_message_at=cursor_at
    )
    rest: list[str] = []
    after = first_page["pageInfo"]["endCursor"]
    while after is not None:
        body = await gql(client, CONVERSATIONS, {"first": 3, "after": after}, user=world.alice)
        assert "errors" not in body, body
        connection = body["data"]["conversations"]
        rest += ids_of(connection)
        page_info = connection["pageInfo"]
        after = page_info["endCursor"] if page_info["hasNextPage"] else None
        # totalCount follows the live list
        assert connection["totalCount"] == len(original) + 7

    # then the original rows come exactly once and in order; rows inserted before the
    # cursor position are not returned, rows after it are
    seen = ids_of(first_page) + rest
    assert [i for i in seen if i in original] == original
    assert len(seen) == len(set(seen))
    assert not {str(i) for i in newer} & set(seen)
    assert str(above) not in seen
    assert {str(i) for i in older} | {str(below)} <= set(rest)


# --- filters --------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["V1", "V2"])
async def test_source_filter_returns_only_that_store(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World, source: str
) -> None:
    # given both stores, when Alice filters on one
    seen, pages = await page_through(client, world.alice, first=4, filter={"source": source})

    # then only that store's rows come, in order, counted alone
    typename = f"{source}Conversation"
    nodes = [e["node"] for p in pages for e in p["edges"]]
    assert {n["source"] for n in nodes} == {source}
    assert {n["__typename"] for n in nodes} == {typename}
    expected = [
        str(r["id"])
        for r in await owner.fetch(EXPECTED_ORDER, world.alice)
        if r["source"] == source
    ]
    assert seen == expected
    assert all(p["totalCount"] == len(expected) for p in pages)


@pytest.fixture
async def migrated(owner: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A user with a v1 conversation and its v2 copy; returns (user, v1 id, v2 id)."""
    user = await make_user(owner)
    v1 = await make_v1_conversation(owner, user, last=10, messages=2)
    v2 = await make_v2_conversation(owner, user, last=10, messages=2)
    await make_v1_conversation(owner, user, last=5)
    return user, v1, v2


async def add_tracking(
    owner: asyncpg.Connection, v1: uuid.UUID, v2: uuid.UUID | None, status: str
) -> None:
    project = await owner.fetchval("SELECT project_id FROM v2_conversations WHERE id = $1", v2)
    await insert(
        owner,
        "migration_tracking",
        v1_conversation_id=v1,
        v2_conversation_id=v2,
        v2_project_id=project,
        migration_status=status,
        reverted_at=at(20) if status == "reverted" else None,
    )


async def test_completed_migration_hides_the_v1_conversation_unless_asked(
    client: httpx.AsyncClient, owner: asyncpg.Connection, migrated: tuple[uuid.UUID, ...]
) -> None:
    # given a v1 conversation whose migration completed
    user, v1, v2 = migrated
    await add_tracking(owner, v1, v2, "completed")

    # when the listing is read by default and with includeMigrated
    default = await gql(client, CONVERSATIONS, {"first": 10}, user=user)
    included = await gql(
        client, CONVERSATIONS, {"first": 10, "filter": {"includeMigrated": True}}, user=user
    )
    explicit_false = await gql(
        client, CONVERSATIONS, {"first": 10, "filter": {"includeMigrated": False}}, user=user
    )

    # then the v1 original is hidden by default (its v2 copy stands for it) and shown on demand
    assert "errors" not in default, default
    assert "errors" not in included, included
    assert "errors" not in explicit_false, explicit_false
    hidden = default["data"]["conversations"]
    assert str(v1) not in ids_of(hidden)
    assert str(v2) in ids_of(hidden)
    assert hidden["totalCount"] == 2
    assert ids_of(explicit_false["data"]["conversations"]) == ids_of(hidden)
    shown = included["data"]["conversations"]
    assert str(v1) in ids_of(shown)
    assert shown["totalCount"] == 3


@pytest.mark.parametrize("status", ["reverted", "pending", "failed"])
async def test_a_migration_that_did_not_complete_does_not_hide(
    client: httpx.AsyncClient,
    owner: asyncpg.Connection,
    migrated: tuple[uuid.UUID, ...],
    status: str,
) -> None:
    # given a tracking row that is not 'completed' (a revert sets the v2 ids to NULL)
    user, v1, v2 = migrated
    if status == "reverted":
        await owner.execute("DELETE FROM v2_conversations WHERE id = $1", v2)
        await insert(
            owner, "migration_tracking", v1_conversation_id=v1, migration_status="reverted",
            reverted_at=at(20),
        )
    else:
        await add_tracking(owner, v1, v2, status)

    # when the listing is read by default
    body = await gql(client, CONVERSATIONS, {"first": 10}, user=user)

    # then the v1 conversation is listed
    assert "errors" not in body, body
    assert str(v1) in ids_of(body["data"]["conversations"])


async def test_owner_filter_for_an_admin_and_for_a_user(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # when the admin filters on Bob, and Alice filters on Bob
    admin_view, admin_pages = await page_through(
        client, world.admin, first=7, filter={"ownerId": gid("Profile", world.bob)}
    )
    alice_view, alice_pages = await page_through(
        client, world.alice, first=7, filter={"ownerId": gid("Profile", world.bob)}
    )

    # then the admin gets exactly Bob's rows; Alice sees none of them
    assert admin_view == await expected_ids(owner, world.bob)
    assert admin_pages[0]["totalCount"] == 13
    assert alice_view == []
    assert alice_pages[0]["totalCount"] == 0


async def test_project_filter(client: httpx.AsyncClient, owner: asyncpg.Connection) -> None:
    # given two projects, and v1 conversations that have no project
    user = await make_user(owner)
    project = await make_project(owner, user, name="Maison")
    other = await make_project(owner, user, name="Garage")
    in_project = [
        await make_v2_conversation(owner, user, project_id=project, last=3),
        await make_v2_conversation(owner, user, project_id=project, last=1),
    ]
    await make_v2_conversation(owner, user, project_id=other, last=2)
    await make_v1_conversation(owner, user, last=4)

    # when the user filters on the first project
    body = await gql(
        client,
        CONVERSATIONS,
        {"first": 10, "filter": {"projectId": gid("Project", project)}},
        user=user,
    )

    # then only its v2 conversations come
    assert "errors" not in body, body
    connection = body["data"]["conversations"]
    assert ids_of(connection) == [str(i) for i in in_project]
    assert connection["totalCount"] == 2


async def test_document_filter_matches_both_stores(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    # given a document linked to a v1 conversation (document_id) and a v2 one (link table)
    user = await make_user(owner)
    document = await make_document(owner, "PLU Lyon")
    other = await make_document(owner, "PLU Paris")
    v1 = await make_v1_conversation(owner, user, last=3, document_id=document)
    v2 = await make_v2_conversation(owner, user, last=2, document_ids=(other, document))
    await make_v1_conversation(owner, user, last=5, document_id=other)
    await make_v2_conversation(owner, user, last=4, document_ids=(other,))
    await make_v1_conversation(owner, user, last=6)

    # when the user filters on the document
    body = await gql(
        client,
        CONVERSATIONS,
        {"first": 10, "filter": {"documentId": gid("Document", document)}},
        user=user,
    )

    # then both conversations linked to it come, and only those
    assert "errors" not in body, body
    connection = body["data"]["conversations"]
    assert ids_of(connection) == [str(v1), str(v2)]
    assert connection["totalCount"] == 2


@pytest.mark.parametrize("active", [True, False])
async def test_is_active_filter(
    client: httpx.AsyncClient, owner: asyncpg.Connection, active: bool
) -> None:
    # given active and inactive conversations in both stores
    user = await make_user(owner)
    rows = {
        True: [
            await make_v1_conversation(owner, user, last=4),
            await make_v2_conversation(owner, user, last=3),
        ],
        False: [
            await make_v1_conversation(owner, user, last=2, is_active=False),
            await make_v2_conversation(owner, user, last=1, is_active=False),
        ],
    }

    # when the user filters on isActive
    body = await gql(
        client, CONVERSATIONS, {"first": 10, "filter": {"isActive": active}}, user=user
    )

    # then only those come
    assert "errors" not in body, body
    connection = body["data"]["conversations"]
    assert ids_of(connection) == [str(i) for i in rows[active]]
    assert {n["node"]["isActive"] for n in connection["edges"]} == {active}
    assert connection["totalCount"] == 2


async def test_last_message_bounds_are_strict(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    # given conversations at minutes 1..5 (both stores) and one without activity
    user = await make_user(owner)
    by_minute = {
        1: await make_v1_conversation(owner, user, last=1),
        2: await make_v2_conversation(owner, user, last=2),
        3: await make_v1_conversation(owner, user, last=3),
        4: await make_v2_conversation(owner, user, last=4),
        5: await make_v1_conversation(owner, user, last=5),
    }
    await make_v2_conversation(owner, user, last=None)

    # when the user asks for activity strictly between minute 1 and minute 5
    both = await gql(
        client,
        CONVERSATIONS,
        {
            "first": 10,
            "filter": {
                "lastMessageAfter": at(1).isoformat(),
                "lastMessageBefore": at(5).isoformat(),
            },
        },
        user=user,
    )
    after_only = await gql(
        client,
        CONVERSATIONS,
        {"first": 10, "filter": {"lastMessageAfter": at(4).isoformat()}},
        user=user,
    )
    before_only = await gql(
        client,
        CONVERSATIONS,
        {"first": 10, "filter": {"lastMessageBefore": at(2).isoformat()}},
        user=user,
    )
    # a bound a microsecond past an instant still excludes it
    just_after = await gql(
        client,
        CONVERSATIONS,
        {
            "first": 10,
            "filter": {"lastMessageAfter": (at(3) - timedelta(microseconds=1)).isoformat()},
        },
        user=user,
    )

    # then the bounds themselves are excluded, and NULL activity never matches
    for body in (both, after_only, before_only, just_after):
        assert "errors" not in body, body
    assert ids_of(both["data"]["conversations"]) == [str(by_minute[m]) for m in (4, 3, 2)]
    assert both["data"]["conversations"]["totalCount"] == 3
    assert ids_of(after_only["data"]["conversations"]) == [str(by_minute[5])]
    assert ids_of(before_only["data"]["conversations"]) == [str(by_minute[1])]
    assert ids_of(just_after["data"]["conversations"]) == [
        str(by_minute[m]) for m in (5, 4, 3)
    ]


@pytest.mark.parametrize(
    ("field", "type_name"),
    [
        ("ownerId", "Document"),
        ("projectId", "Profile"),
        ("documentId", "V1Conversation"),
        ("ownerId", "V2Conversation"),
    ],
)
async def test_a_global_id_of_the_wrong_type_in_a_filter_is_bad_user_input(
    client: httpx.AsyncClient, world: World, field: str, type_name: str
) -> None:
    # when a filter id names another type
    body = await gql(
        client,
        CONVERSATIONS,
        {"first": 5, "filter": {field: gid(type_name, uuid.uuid4())}},
        user=world.alice,
    )

    # then the request is refused with BAD_USER_INPUT
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] is None


async def test_a_malformed_id_in_a_filter_is_bad_user_input(
    client: httpx.AsyncClient, world: World
) -> None:
    body = await gql(
        client, CONVERSATIONS, {"first": 5, "filter": {"ownerId": "not-an-id"}}, user=world.alice
    )
    assert codes(body) == ["BAD_USER_INPUT"]


# --- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize("first", [0, 101, -1])
async def test_first_out_of_range_is_bad_user_input(
    client: httpx.AsyncClient, world: World, statements: StatementCounter, first: int
) -> None:
    # when first is outside 1..100
    statements.reset()
    body = await gql(client, CONVERSATIONS, {"first": first}, user=world.alice)

    # then the request is refused, before any statement
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] is None
    assert statements.total == 0, statements.statements


@pytest.mark.parametrize("first", [1, 100])
async def test_first_bounds_are_accepted(
    client: httpx.AsyncClient, world: World, first: int
) -> None:
    body = await gql(client, CONVERSATIONS, {"first": first}, user=world.admin)
    assert "errors" not in body, body
    assert len(body["data"]["conversations"]["edges"]) == min(first, 28)


async def test_first_null_and_omitted_mean_twenty(client: httpx.AsyncClient, world: World) -> None:
    # given 28 conversations visible to the admin
    # when first is an explicit null, and when it is omitted
    explicit = await gql(client, CONVERSATIONS, {"first": None}, user=world.admin)
    omitted = await gql(client, CONVERSATIONS, {}, user=world.admin)
    literal = await gql(
        client, "{ conversations(first: null) { edges { cursor } } }", user=world.admin
    )

    # then both give the default page of 20
    for body in (explicit, omitted, literal):
        assert "errors" not in body, body
        assert len(body["data"]["conversations"]["edges"]) == 20
    assert explicit["data"]["conversations"]["pageInfo"]["hasNextPage"] is True
    assert explicit["data"]["conversations"]["totalCount"] == 28


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_tampered_cursors_are_bad_user_input(
    client: httpx.AsyncClient, world: World
) -> None:
    # given cursors of other connections
    messages = await gql(client, MESSAGES_CURSOR, user=world.alice)
    assert "errors" not in messages, messages
    message_cursor = messages["data"]["conversations"]["edges"][0]["node"]["messages"][
        "pageInfo"
    ]["endCursor"]
    assert message_cursor
    cities = await gql(client, CITIES_CURSOR)
    assert "errors" not in cities, cities
    tampered = [
        b64(uuid.uuid4().bytes),  # random bytes
        b64(b"hello world"),  # not JSON
        "!!not base64!!",
        b64(orjson.dumps(["conversation", "yesterday", str(uuid.uuid4())])),
        b64(orjson.dumps(["conversation", at(0).isoformat(), "not-a-uuid"])),
        b64(orjson.dumps(["conversation", "2026-03-01T09:00:00", str(uuid.uuid4())])),
        b64(orjson.dumps(["conversation", at(0).isoformat()])),
        b64(orjson.dumps({"kind": "conversation"})),
        message_cursor,  # another connection's cursor
        b64(orjson.dumps(["event", at(0).isoformat(), str(uuid.uuid4())])),
    ]

    # when each is passed as after
    for cursor in tampered:
        body = await gql(client, CONVERSATIONS, {"first": 3, "after": cursor}, user=world.alice)

        # then the request is refused with BAD_USER_INPUT
        assert codes(body) == ["BAD_USER_INPUT"], (cursor, body)
        assert body["data"] is None


async def test_a_cursor_at_the_end_gives_an_empty_page(
    client: httpx.AsyncClient, world: World
) -> None:
    # given the last row's cursor
    _seen, pages = await page_through(client, world.bob, first=13)
    last = pages[-1]["pageInfo"]["endCursor"]

    # when paging after it
    body = await gql(client, CONVERSATIONS, {"first": 3, "after": last}, user=world.bob)

    # then the page is empty, not an error, and totalCount still counts everything
    assert "errors" not in body, body
    connection = body["data"]["conversations"]
    assert connection["edges"] == []
    assert connection["pageInfo"] == {
        "hasNextPage": False,
        "endCursor": None,
        "startCursor": None,
    }
    assert connection["totalCount"] == 13


# --- who sees what --------------------------------------------------------------------------


async def test_anonymous_viewer_gets_an_empty_connection_without_sql(
    client: httpx.AsyncClient, world: World, statements: StatementCounter
) -> None:
    # given conversations exist, when an anonymous viewer lists them
    statements.reset()
    body = await gql(client, CONVERSATIONS, {"first": 5})

    # then the connection is empty, counts zero, and no statement was sent
    assert "errors" not in body, body
    assert body["data"]["conversations"] == {
        "totalCount": 0,
        "edges": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None, "startCursor": None},
    }
    assert statements.total == 0, statements.statements


async def test_service_role_sees_every_users_rows(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # when the service role lists conversations
    body = await gql(client, CONVERSATIONS, {"first": 30}, user=uuid.uuid4(), role="service_role")

    # then it sees both users' rows, in order
    assert "errors" not in body, body
    assert ids_of(body["data"]["conversations"]) == await expected_ids(owner, None)
    assert body["data"]["conversations"]["totalCount"] == 28


# --- scalars --------------------------------------------------------------------------------


async def test_datetimes_keep_microseconds_and_an_offset(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    # given conversations whose timestamps carry microseconds
    user = await make_user(owner)
    v1 = await make_v1_conversation(owner, user, last=1)
    v2 = await make_v2_conversation(owner, user, last=2)

    # when they are read
    body = await gql(client, CONVERSATIONS, {"first": 5}, user=user)

    # then lastMessageAt and createdAt are ISO 8601 with microseconds and an offset, equal
    # to the stored instants
    assert "errors" not in body, body
    nodes = {e["node"]["databaseId"]: e["node"] for e in body["data"]["conversations"]["edges"]}
    for cid, minute in ((v1, 1), (v2, 2)):
        node = nodes[str(cid)]
        for value in (node["lastMessageAt"], node["createdAt"]):
            assert ISO_WITH_MICROSECONDS_AND_OFFSET.match(value), value
        assert datetime.fromisoformat(node["lastMessageAt"]) == at(minute)
        assert datetime.fromisoformat(node["lastMessageAt"]).microsecond == 123456
