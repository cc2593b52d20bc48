"""The graph around the listing: ``node``/``nodes`` for every Node type, messages of a
conversation, the per-type rules of DESIGN §7, projects, and the public reference data."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.db import StatementCounter, in_use
from tests.factories import (
    at,
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
from tests.graphql import codes, gid, gql, ok

NODE_TYPES = [
    "V1Conversation",
    "V2Conversation",
    "V1Message",
    "V2Message",
    "Project",
    "City",
    "Zoning",
    "Zone",
    "Typology",
    "Document",
    "Profile",
    "Migration",
    "ChatEvent",
]

NODE_FIELDS = "fragment NodeFields on Node { __typename id " + " ".join(
    f"... on {t} {{ databaseId }}" for t in NODE_TYPES
) + " }"

NODE = (
    """
query Node($id: ID!) { node(id: $id) { ...NodeFields } }
"""
    + NODE_FIELDS
)

NODES = (
    """
query Nodes($ids: [ID!]!) { nodes(ids: $ids) { ...NodeFields } }
"""
    + NODE_FIELDS
)

MESSAGES = """
query Messages($id: ID!, $first: Int, $after: String) {
  node(id: $id) {
    ... on Conversation {
      messageCount
      messages(first: $first, after: $after) {
        totalCount
        edges { cursor node {
          __typename id databaseId source role text conversationTurn createdAt
          author { id databaseId fullName }
          replyTo { __typename id }
          documents { id title }
        } }
        pageInfo { hasNextPage endCursor startCursor }
      }
    }
  }
}
"""

V1_CONVERSATION = """
query V1($id: ID!) {
  node(id: $id) {
    ... on V1Conversation {
      source title isActive messageCount
      owner { databaseId }
      document { id title }
      documents { id title }
      migration { status v1Conversation { id } v2Conversation { id } }
    }
  }
}
"""

V2_CONVERSATION = """
query V2($id: ID!) {
  node(id: $id) {
    ... on V2Conversation {
      source title messageCount documentCount conversationType
      owner { databaseId }
      project { id name }
      documents { id title }
      migratedFrom { id title }
    }
  }
}
"""

DOCUMENT = """
query Document($id: ID!) {
  node(id: $id) {
    ... on Document {
      title url
      city { id name inseeCode zones { id code } }
      zoning { id name city { id } }
      zone { id code label city { id } zoning { id } }
      typology { id name }
    }
  }
}
"""

VIEWER = "query Viewer { viewer { id databaseId email fullName isAdmin } }"

PROJECTS = """
query Projects($filter: ProjectFilter, $first: Int, $after: String) {
  projects(filter: $filter, first: $first, after: $after) {
    totalCount
    edges { node { id databaseId name status starred } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

PROJECT = """
query Project($id: ID!, $first: Int, $after: String) {
  node(id: $id) {
    ... on Project {
      name status starred
      owner { databaseId }
      mainCity { name } mainZone { code }
      documents { databaseId title }
      conversations(first: $first, after: $after) {
        totalCount
        edges { node { __typename databaseId project { databaseId } } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}
"""

PROJECT_CONVERSATIONS = """
query ProjectConversations($id: ID!, $first: Int) {
  node(id: $id) {
    ... on Project {
      conversations(first: $first) { totalCount edges { cursor } pageInfo { hasNextPage } }
    }
  }
}
"""

CITIES = """
query Cities($search: String, $first: Int, $after: String) {
  cities(search: $search, first: $first, after: $after) {
    totalCount
    edges { cursor node { id databaseId name inseeCode } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

DOCUMENTS = """
query Documents($filter: DocumentFilter, $first: Int, $after: String) {
  documents(filter: $filter, first: $first, after: $after) {
    totalCount
    edges { node { databaseId title city { name } zone { code } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""






@dataclass
class World:
    user: uuid.UUID
    other: uuid.UUID
    ids: dict[str, uuid.UUID]  # one visible row of every Node type
    others: dict[str, uuid.UUID]  # rows of the other user


async def first_message(conn: asyncpg.Connection, table: str, conversation: uuid.UUID) -> uuid.UUID:
    return await conn.fetchval(  # type: ignore[no-any-return]
        f"SELECT id FROM {table} WHERE conversation_id = $1 ORDER BY created_at, id LIMIT 1",
        conversation,
    )


@pytest.fixture
async def world(owner: asyncpg.Connection) -> World:
    user = await make_user(owner, "Camille Martin")
    other = await make_user(owner, "Dominique Bernard")
    city = await make_city(owner, "Lyon", "69123")
    zone = await make_zone(owner, city, "UB")
    zoning = await owner.fetchval("SELECT zoning_id FROM zones WHERE id = $1", zone)
    typology = await insert(owner, "typologies", name="Règlement écrit")
    document = await make_document(
        owner, "Règlement UB", city_id=city, zoning_id=zoning, zone_id=zone, typology_id=typology
    )
    project = await make_project(owner, user, name="Maison", main_city_id=city, main_zone_id=zone)
    v1 = await make_v1_conversation(owner, user, last=3, document_id=document, messages=3)
    v2 = await make_v2_conversation(
        owner, user, project_id=project, last=2, messages=2, document_ids=(document,)
    )
    migration = await insert(
        owner,
        "migration_tracking",
        v1_conversation_id=v1,
        v2_conversation_id=v2,
        v2_project_id=project,
        migration_status="completed",
    )
    event = await make_event(owner, user, source="v1")
    ids = {
        "V1Conversation": v1,
        "V2Conversation": v2,
        "V1Message": await first_message(owner, "chat_messages", v1),
        "V2Message": await first_message(owner, "v2_messages", v2),
        "Project": project,
        "City": city,
        "Zoning": zoning,
        "Zone": zone,
        "Typology": typology,
        "Document": document,
        "Profile": user,
        "Migration": migration,
        "ChatEvent": event,
    }
    other_project = await make_project(owner, other, name="Autre")
    other_v1 = await make_v1_conversation(owner, other, last=1, messages=1)
    other_v2 = await make_v2_conversation(owner, other, project_id=other_project, messages=1)
    others = {
        "V1Conversation": other_v1,
        "V2Conversation": other_v2,
        "V1Message": await first_message(owner, "chat_messages", other_v1),
        "V2Message": await first_message(owner, "v2_messages", other_v2),
        "Project": other_project,
        "Profile": other,
        "Migration": await insert(
            owner, "migration_tracking", v1_conversation_id=other_v1, migration_status="failed"
        ),
        "ChatEvent": await make_event(owner, other, source="v2"),
    }
    return World(user=user, other=other, ids=ids, others=others)


# --- node / nodes ---------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", NODE_TYPES)
async def test_node_returns_every_type_by_its_global_id(
    client: httpx.AsyncClient, world: World, type_name: str
) -> None:
    # given a row of that type visible to the user
    database_id = world.ids[type_name]

    # when the user asks for it by global id
    data = ok(await gql(client, NODE, {"id": gid(type_name, database_id)}, user=world.user))

    # then the object comes back with its type, id and databaseId
    assert data["node"] == {
        "__typename": type_name,
        "id": gid(type_name, database_id),
        "databaseId": str(database_id),
    }


async def test_nodes_keeps_the_order_and_nulls_what_is_missing_or_not_visible(
    client: httpx.AsyncClient, world: World
) -> None:
    # given every type, plus a missing row and another user's rows, in a mixed order
    ids = [gid(t, i) for t, i in world.ids.items()]
    missing = gid("V2Conversation", uuid.uuid4())
    hidden = [gid(t, i) for t, i in world.others.items()]
    requested = [*reversed(ids), missing, *hidden, ids[0]]

    # when the user asks for them at once
    data = ok(await gql(client, NODES, {"ids": requested}, user=world.user))

    # then each position has its object, or null
    result = data["nodes"]
    assert len(result) == len(requested)
    expected_visible = list(reversed(ids))
    assert [n["id"] for n in result[: len(ids)]] == expected_visible
    assert result[len(ids)] is None
    assert result[len(ids) + 1 : -1] == [None] * len(hidden)
    assert result[-1]["id"] == ids[0]


@pytest.mark.parametrize(
    "type_name", ["V1Conversation", "V2Conversation", "V1Message", "V2Message", "Project",
                  "Profile", "Migration", "ChatEvent"]
)
async def test_another_users_object_is_null(
    client: httpx.AsyncClient, world: World, type_name: str
) -> None:
    # when the user asks for another user's object
    body = await gql(client, NODE, {"id": gid(type_name, world.others[type_name])}, user=world.user)

    # then it is null, without error
    assert ok(body)["node"] is None


@pytest.mark.parametrize("type_name", NODE_TYPES)
async def test_a_well_formed_id_of_a_missing_row_is_null(
    client: httpx.AsyncClient, world: World, type_name: str
) -> None:
    body = await gql(client, NODE, {"id": gid(type_name, uuid.uuid4())}, user=world.user)
    assert ok(body)["node"] is None


async def test_an_admin_reads_other_users_objects(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # given an admin
    admin = await make_user(owner, "Admin", is_admin=True)

    # when the admin asks for the other user's objects
    ids = [gid(t, i) for t, i in world.others.items()]
    data = ok(await gql(client, NODES, {"ids": ids}, user=admin))

    # then they are visible
    assert [n["id"] if n else None for n in data["nodes"]] == ids


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "bad_id",
    [
        "not an id",
        "%%%",
        b64("Conversation:" + str(uuid.uuid4())),  # not a type of the graph
        b64("City:not-a-uuid"),
        b64(str(uuid.uuid4())),  # no type
        "",
    ],
)
async def test_a_malformed_id_is_bad_user_input(
    client: httpx.AsyncClient, world: World, statements: StatementCounter, bad_id: str
) -> None:
    # when node and nodes get a malformed id
    statements.reset()
    single = await gql(client, NODE, {"id": bad_id}, user=world.user)
    many = await gql(
        client, NODES, {"ids": [gid("City", world.ids["City"]), bad_id]}, user=world.user
    )

    # then both are refused with BAD_USER_INPUT, before any statement
    assert codes(single) == ["BAD_USER_INPUT"]
    assert codes(many) == ["BAD_USER_INPUT"]
    assert statements.total == 0, statements.statements


# --- messages -------------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", ["V1Conversation", "V2Conversation"])
async def test_messages_page_oldest_first(
    client: httpx.AsyncClient, owner: asyncpg.Connection, type_name: str
) -> None:
    # given a conversation with 7 messages, two of them at the very same instant
    user = await make_user(owner)
    if type_name == "V1Conversation":
        conversation = await make_v1_conversation(owner, user, messages=5)
        table = "chat_messages"
    else:
        conversation = await make_v2_conversation(owner, user, messages=5)
        table = "v2_messages"
    for _ in range(2):
        await insert(
            owner, table, conversation_id=conversation, user_id=user, role="user",
            message="même instant", created_at=at(-10),
        )
    expected = [
        str(r["id"])
        for r in await owner.fetch(
            f"SELECT id FROM {table} WHERE conversation_id = $1 ORDER BY created_at, id",
            conversation,
        )
    ]

    # when the user pages through the messages three at a time
    seen: list[str] = []
    pages = []
    after = None
    while True:
        data = ok(
            await gql(
                client,
                MESSAGES,
                {"id": gid(type_name, conversation), "first": 3, "after": after},
                user=user,
            )
        )
        connection = data["node"]["messages"]
        pages.append(connection)
        seen += [e["node"]["databaseId"] for e in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    # then every message comes once, oldest first, with the full count on every page
    assert seen == expected
    assert [len(p["edges"]) for p in pages] == [3, 3, 1]
    assert all(p["totalCount"] == 7 for p in pages)
    for p in pages:
        assert p["pageInfo"]["endCursor"] == p["edges"][-1]["cursor"]
        assert p["pageInfo"]["startCursor"] == p["edges"][0]["cursor"]


@pytest.mark.parametrize("first", [0, 101, -5])
async def test_messages_first_out_of_range_is_bad_user_input(
    client: httpx.AsyncClient, world: World, first: int
) -> None:
    body = await gql(
        client,
        MESSAGES,
        {"id": gid("V1Conversation", world.ids["V1Conversation"]), "first": first},
        user=world.user,
    )
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_messages_first_null_means_twenty(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    # given 25 messages
    user = await make_user(owner)
    conversation = await make_v2_conversation(owner, user, messages=25)

    # when first is null
    data = ok(
        await gql(
            client, MESSAGES, {"id": gid("V2Conversation", conversation), "first": None}, user=user
        )
    )

    # then the page has 20 messages
    assert len(data["node"]["messages"]["edges"]) == 20
    assert data["node"]["messages"]["pageInfo"]["hasNextPage"] is True
    assert data["node"]["messages"]["totalCount"] == 25


async def test_a_conversation_cursor_is_not_a_message_cursor(
    client: httpx.AsyncClient, world: World
) -> None:
    # given a cursor of the conversations connection
    data = ok(
        await gql(client, "{ conversations(first: 1) { pageInfo { endCursor } } }", user=world.user)
    )
    cursor = data["conversations"]["pageInfo"]["endCursor"]

    # when it is used to page messages
    body = await gql(
        client,
        MESSAGES,
        {"id": gid("V1Conversation", world.ids["V1Conversation"]), "first": 2, "after": cursor},
        user=world.user,
    )

    # then it is refused
    assert codes(body) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("type_name", ["V1Conversation", "V2Conversation"])
async def test_reply_to_and_author(
    client: httpx.AsyncClient, owner: asyncpg.Connection, type_name: str
) -> None:
    # given user/assistant messages replying to each other, and a system message
    user = await make_user(owner, "Camille Martin")
    if type_name == "V1Conversation":
        conversation = await make_v1_conversation(owner, user, messages=4)
        table, message_type = "chat_messages", "V1Message"
    else:
        conversation = await make_v2_conversation(owner, user, messages=4)
        table, message_type = "v2_messages", "V2Message"
    await insert(
        owner, table, conversation_id=conversation, user_id=user, role="system",
        message="Contexte", created_at=at(100),
    )

    # when the user reads the messages
    data = ok(
        await gql(client, MESSAGES, {"id": gid(type_name, conversation), "first": 10}, user=user)
    )

    # then replyTo points at the previous message, and only USER messages have an author
    messages = [e["node"] for e in data["node"]["messages"]["edges"]]
    assert [m["role"] for m in messages] == ["USER", "ASSISTANT", "USER", "ASSISTANT", "SYSTEM"]
    assert {m["__typename"] for m in messages} == {message_type}
    assert {m["source"] for m in messages} == {type_name[:2]}
    assert messages[0]["replyTo"] is None
    for previous, message in pairwise(messages[:4]):
        assert message["replyTo"] == {"__typename": message_type, "id": previous["id"]}
    assert messages[4]["replyTo"] is None
    for m in messages:
        if m["role"] == "USER":
            assert m["author"] == {
                "id": gid("Profile", user),
                "databaseId": str(user),
                "fullName": "Camille Martin",
            }
        else:
            assert m["author"] is None
    assert [m["conversationTurn"] for m in messages[:4]] == [1, 1, 2, 2]


async def test_reply_to_a_message_on_an_earlier_page(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    # given a reply whose target is on the previous page
    user = await make_user(owner)
    conversation = await make_v1_conversation(owner, user, messages=4)
    ids = [
        r["id"]
        for r in await owner.fetch(
            "SELECT id FROM chat_messages WHERE conversation_id = $1 ORDER BY created_at, id",
            conversation,
        )
    ]
    first_page = ok(
        await gql(client, MESSAGES, {"id": gid("V1Conversation", conversation), "first": 2},
                  user=user)
    )
    after = first_page["node"]["messages"]["pageInfo"]["endCursor"]

    # when the next page is read
    data = ok(
        await gql(
            client,
            MESSAGES,
            {"id": gid("V1Conversation", conversation), "first": 2, "after": after},
            user=user,
        )
    )

    # then its first message's replyTo is the last message of the first page
    messages = [e["node"] for e in data["node"]["messages"]["edges"]]
    assert messages[0]["replyTo"]["id"] == gid("V1Message", ids[1])


async def test_message_documents(client: httpx.AsyncClient, owner: asyncpg.Connection) -> None:
    # given a v1 message with a document_id and a v2 message referencing documents in order
    user = await make_user(owner)
    first = await make_document(owner, "B premier")
    second = await make_document(owner, "A second")
    v1 = await make_v1_conversation(owner, user, messages=0)
    await insert(
        owner, "chat_messages", conversation_id=v1, user_id=user, role="assistant",
        message="voir le document", document_id=first, created_at=at(0),
    )
    await insert(
        owner, "chat_messages", conversation_id=v1, user_id=user, role="user",
        message="merci", created_at=at(1),
    )
    v2 = await make_v2_conversation(owner, user, messages=0)
    await insert(
        owner, "v2_messages", conversation_id=v2, user_id=user, role="assistant",
        message="deux documents", referenced_documents=[second, first, uuid.uuid4()],
        created_at=at(0),
    )

    # when the messages are read
    v1_data = ok(await gql(client, MESSAGES, {"id": gid("V1Conversation", v1)}, user=user))
    v2_data = ok(await gql(client, MESSAGES, {"id": gid("V2Conversation", v2)}, user=user))

    # then a v1 message lists its document; a v2 message its references, in order, skipping
    # ids of missing documents
    v1_messages = [e["node"] for e in v1_data["node"]["messages"]["edges"]]
    assert v1_messages[0]["documents"] == [{"id": gid("Document", first), "title": "B premier"}]
    assert v1_messages[1]["documents"] == []
    v2_messages = [e["node"] for e in v2_data["node"]["messages"]["edges"]]
    assert v2_messages[0]["documents"] == [
        {"id": gid("Document", second), "title": "A second"},
        {"id": gid("Document", first), "title": "B premier"},
    ]


async def test_v2_message_fields(client: httpx.AsyncClient, owner: asyncpg.Connection) -> None:
    # given a v2 message with its v2-only columns set
    user = await make_user(owner)
    city = await make_city(owner, "Lyon")
    zone = await make_zone(owner, city, "UA")
    conversation = await make_v2_conversation(owner, user)
    message = await insert(
        owner, "v2_messages", conversation_id=conversation, user_id=user, role="assistant",
        message="Zone UA", message_type="address_search", referenced_zones=[zone],
        referenced_cities=[city], intent_detected="zone_lookup", confidence_score=0.87,
        ai_model_used="gpt-4o", search_context={"address": "1 rue X"}, metadata={"k": 1},
    )

    # when it is read by id
    data = ok(
        await gql(
            client,
            """query($id: ID!) { node(id: $id) { ... on V2Message {
              messageType intentDetected confidenceScore aiModelUsed searchContext metadata
              referencedZones { code } referencedCities { name } } } }""",
            {"id": gid("V2Message", message)},
            user=user,
        )
    )

    # then every field is there
    assert data["node"] == {
        "messageType": "address_search",
        "intentDetected": "zone_lookup",
        "confidenceScore": 0.87,
        "aiModelUsed": "gpt-4o",
        "searchContext": {"address": "1 rue X"},
        "metadata": {"k": 1},
        "referencedZones": [{"code": "UA"}],
        "referencedCities": [{"name": "Lyon"}],
    }


# --- conversations ----------------------------------------------------------------------------


async def test_v1_title_is_the_document_title(client: httpx.AsyncClient, world: World) -> None:
    # given a v1 conversation with a document, when it is read
    data = ok(
        await gql(
            client, V1_CONVERSATION, {"id": gid("V1Conversation", world.ids["V1Conversation"])},
            user=world.user,
        )
    )

    # then its title is the document's, and its documents are that document
    node = data["node"]
    document = {"id": gid("Document", world.ids["Document"]), "title": "Règlement UB"}
    assert node["title"] == "Règlement UB"
    assert node["document"] == document
    assert node["documents"] == [document]
    assert node["source"] == "V1"
    assert node["messageCount"] == 3
    assert node["owner"] == {"databaseId": str(world.user)}
    assert node["migration"] == {
        "status": "COMPLETED",
        "v1Conversation": {"id": gid("V1Conversation", world.ids["V1Conversation"])},
        "v2Conversation": {"id": gid("V2Conversation", world.ids["V2Conversation"])},
    }


async def test_v1_title_is_the_first_80_code_points_of_the_first_user_message(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    # given a v1 conversation without a document whose first message is the assistant's and
    # whose first user message is 90 multi-byte code points, starting with spaces
    user = await make_user(owner)
    conversation = await make_v1_conversation(owner, user, messages=0)
    text = "  " + "é" * 40 + "🏠" * 30 + "ß" * 18
    assert len(text) == 90
    await insert(
        owner, "chat_messages", conversation_id=conversation, user_id=user, role="assistant",
        message="Bonjour, que puis-je faire ?", created_at=at(0),
    )
    await insert(
        owner, "chat_messages", conversation_id=conversation, user_id=user, role="user",
        message=text, created_at=at(1),
    )
    await insert(
        owner, "chat_messages", conversation_id=conversation, user_id=user, role="user",
        message="Deuxième question", created_at=at(2),
    )

    # when it is read, by node and in the listing
    node = ok(
        await gql(client, V1_CONVERSATION, {"id": gid("V1Conversation", conversation)}, user=user)
    )["node"]
    listed = ok(await gql(client, "{ conversations { edges { node { title } } } }", user=user))

    # then the title is the first 80 code points, untrimmed
    assert node["title"] == text[:80]
    assert len(node["title"]) == 80
    assert node["title"].startswith("  é")
    assert listed["conversations"]["edges"][0]["node"]["title"] == text[:80]
    assert node["document"] is None
    assert node["documents"] == []
    assert node["migration"] is None


async def test_v1_title_is_null_without_document_or_user_message(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    # given a v1 conversation without a document and with only an assistant message
    user = await make_user(owner)
    conversation = await make_v1_conversation(owner, user, messages=0)
    await insert(
        owner, "chat_messages", conversation_id=conversation, user_id=user, role="assistant",
        message="Bonjour", created_at=at(0),
    )

    # when it is read, then its title is null
    node = ok(
        await gql(client, V1_CONVERSATION, {"id": gid("V1Conversation", conversation)}, user=user)
    )["node"]
    assert node["title"] is None
    assert node["messageCount"] == 1


async def test_v2_conversation_project_documents_and_migrated_from(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # given the migrated v2 copy, and a v2 conversation never migrated
    fresh = await make_v2_conversation(owner, world.user, project_id=world.ids["Project"])

    # when both are read
    copy = ok(
        await gql(
            client,
            V2_CONVERSATION,
            {"id": gid("V2Conversation", world.ids["V2Conversation"])},
            user=world.user,
        )
    )["node"]
    plain = ok(
        await gql(client, V2_CONVERSATION, {"id": gid("V2Conversation", fresh)}, user=world.user)
    )["node"]

    # then the copy names its project, documents and v1 original; the other has no original
    project = {"id": gid("Project", world.ids["Project"]), "name": "Maison"}
    assert copy["project"] == project
    assert copy["source"] == "V2"
    assert copy["documents"] == [
        {"id": gid("Document", world.ids["Document"]), "title": "Règlement UB"}
    ]
    assert copy["documentCount"] == 1
    assert copy["messageCount"] == 2
    assert copy["migratedFrom"] == {
        "id": gid("V1Conversation", world.ids["V1Conversation"]),
        "title": "Règlement UB",
    }
    assert plain["project"] == project
    assert plain["migratedFrom"] is None
    assert plain["documents"] == []


async def test_migrated_from_is_null_after_a_revert(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    # given a reverted migration whose tracking row still exists (v2 ids NULL), and a new v2
    # conversation
    user = await make_user(owner)
    v1 = await make_v1_conversation(owner, user, messages=1)
    v2 = await make_v2_conversation(owner, user)
    await insert(
        owner, "migration_tracking", v1_conversation_id=v1, migration_status="reverted",
        reverted_at=at(5),
    )

    # when they are read
    data = ok(
        await gql(
            client,
            """query($v1: ID!, $v2: ID!) {
              a: node(id: $v1) { ... on V1Conversation { migration { status revertedAt } } }
              b: node(id: $v2) { ... on V2Conversation { migratedFrom { id } } } }""",
            {"v1": gid("V1Conversation", v1), "v2": gid("V2Conversation", v2)},
            user=user,
        )
    )

    # then the v1 conversation shows the reverted migration, the v2 one no origin
    assert data["a"]["migration"]["status"] == "REVERTED"
    assert data["a"]["migration"]["revertedAt"] is not None
    assert data["b"]["migratedFrom"] is None


async def test_document_relations(client: httpx.AsyncClient, world: World) -> None:
    # when a document is read with everything it points to
    data = ok(
        await gql(client, DOCUMENT, {"id": gid("Document", world.ids["Document"])}, user=world.user)
    )

    # then its city, zoning, zone and typology come, with their own relations
    city = gid("City", world.ids["City"])
    zoning = gid("Zoning", world.ids["Zoning"])
    zone = gid("Zone", world.ids["Zone"])
    assert data["node"] == {
        "title": "Règlement UB",
        "url": "https://docs.example/x.pdf",
        "city": {
            "id": city,
            "name": "Lyon",
            "inseeCode": "69123",
            "zones": [{"id": zone, "code": "UB"}],
        },
        "zoning": {"id": zoning, "name": "PLU", "city": {"id": city}},
        "zone": {
            "id": zone,
            "code": "UB",
            "label": "Zone UB",
            "city": {"id": city},
            "zoning": {"id": zoning},
        },
        "typology": {"id": gid("Typology", world.ids["Typology"]), "name": "Règlement écrit"},
    }


async def test_a_document_without_relations(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    # given a document with no city, zone, zoning or typology
    document = await make_document(owner, "Sans lieu")

    # when it is read (anonymously: documents are public)
    data = ok(await gql(client, DOCUMENT, {"id": gid("Document", document)}))

    # then the relations are null
    assert data["node"]["city"] is None
    assert data["node"]["zoning"] is None
    assert data["node"]["zone"] is None
    assert data["node"]["typology"] is None


# --- viewer, projects -------------------------------------------------------------------------


async def test_viewer(client: httpx.AsyncClient, owner: asyncpg.Connection, world: World) -> None:
    # when the user, an anonymous viewer and the service role ask who they are
    signed_in = ok(await gql(client, VIEWER, user=world.user))
    anonymous = ok(await gql(client, VIEWER))
    service = ok(await gql(client, VIEWER, user=uuid.uuid4(), role="service_role"))

    # then the user gets their profile, the others null
    email = await owner.fetchval("SELECT email FROM profiles WHERE id = $1", world.user)
    assert signed_in["viewer"] == {
        "id": gid("Profile", world.user),
        "databaseId": str(world.user),
        "email": email,
        "fullName": "Camille Martin",
        "isAdmin": False,
    }
    assert anonymous["viewer"] is None
    assert service["viewer"] is None


@pytest.fixture
async def projects(owner: asyncpg.Connection) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    user = await make_user(owner)
    other = await make_user(owner)
    rows = {}
    for i, (name, status, starred) in enumerate(
        [
            ("Maison", "active", True),
            ("Garage", "draft", False),
            ("Piscine", "active", False),
            ("Abri", "completed", True),
            ("Véranda", "archived", None),
        ]
    ):
        rows[name] = await make_project(
            owner, user, name=name, status=status, starred=starred, created_at=at(i)
        )
    await make_project(owner, other, name="Chez l'autre", status="active", created_at=at(10))
    return user, rows


async def test_projects_are_the_viewers_newest_first(
    client: httpx.AsyncClient, projects: tuple[uuid.UUID, dict[str, uuid.UUID]]
) -> None:
    user, _rows = projects

    # when the user pages through their projects two at a time
    names: list[str] = []
    after = None
    counts = set()
    while True:
        data = ok(await gql(client, PROJECTS, {"first": 2, "after": after}, user=user))
        names += [e["node"]["name"] for e in data["projects"]["edges"]]
        counts.add(data["projects"]["totalCount"])
        if not data["projects"]["pageInfo"]["hasNextPage"]:
            break
        after = data["projects"]["pageInfo"]["endCursor"]

    # then they are theirs only, newest first
    assert names == ["Véranda", "Abri", "Piscine", "Garage", "Maison"]
    assert counts == {5}


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"status": "ACTIVE"}, ["Piscine", "Maison"]),
        ({"status": "DRAFT"}, ["Garage"]),
        ({"starred": True}, ["Abri", "Maison"]),
        ({"starred": False}, ["Véranda", "Piscine", "Garage"]),
        ({"status": "ACTIVE", "starred": True}, ["Maison"]),
        ({}, ["Véranda", "Abri", "Piscine", "Garage", "Maison"]),
    ],
)
async def test_projects_filter(
    client: httpx.AsyncClient,
    projects: tuple[uuid.UUID, dict[str, uuid.UUID]],
    filter: dict[str, Any],
    expected: list[str],
) -> None:
    user, _ = projects
    data = ok(await gql(client, PROJECTS, {"filter": filter}, user=user))
    assert [e["node"]["name"] for e in data["projects"]["edges"]] == expected
    assert data["projects"]["totalCount"] == len(expected)


async def test_projects_anonymous_is_empty(client: httpx.AsyncClient) -> None:
    data = ok(await gql(client, PROJECTS))
    assert data["projects"]["edges"] == []
    assert data["projects"]["totalCount"] == 0


async def test_project_conversations_and_documents(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    # given a project with five conversations and documents, some pinned
    user = await make_user(owner)
    city = await make_city(owner, "Nice", "06088")
    zone = await make_zone(owner, city, "UC")
    project = await make_project(owner, user, name="Maison", main_city_id=city, main_zone_id=zone)
    other = await make_project(owner, user, name="Autre")
    conversations = [
        await make_v2_conversation(owner, user, project_id=project, last=m) for m in (5, 1, 3, 4)
    ]
    await make_v2_conversation(owner, user, project_id=project, last=None)
    await make_v2_conversation(owner, user, project_id=other, last=10)
    docs = {}
    for title, pinned, minute in [("Ancien", False, 0), ("Épinglé récent", True, 5),
                                  ("Récent", False, 6), ("Épinglé ancien", True, 1)]:
        docs[title] = await make_document(owner, title)
        await insert(
            owner, "v2_project_documents", project_id=project, document_id=docs[title],
            pinned=pinned, added_at=at(minute),
        )
    expected_order = [
        str(r["id"])
        for r in await owner.fetch(
            "SELECT id FROM v2_conversations WHERE project_id = $1 "
            "ORDER BY last_message_at DESC NULLS LAST, id DESC",
            project,
        )
    ]
    assert expected_order[:4] == [str(conversations[i]) for i in (0, 3, 2, 1)]

    # when the project is read, paging its conversations two at a time
    seen: list[str] = []
    after = None
    while True:
        data = ok(
            await gql(client, PROJECT, {"id": gid("Project", project), "first": 2, "after": after},
                      user=user)
        )
        node = data["node"]
        page = node["conversations"]
        assert page["totalCount"] == 5
        assert {e["node"]["__typename"] for e in page["edges"]} == {"V2Conversation"}
        assert {e["node"]["project"]["databaseId"] for e in page["edges"]} == {str(project)}
        seen += [e["node"]["databaseId"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    # then its conversations come latest first, and its documents pinned first
    assert seen == expected_order
    assert [d["title"] for d in node["documents"]] == [
        "Épinglé ancien", "Épinglé récent", "Ancien", "Récent"
    ]
    assert node["mainCity"] == {"name": "Nice"}
    assert node["mainZone"] == {"code": "UC"}
    assert node["owner"] == {"databaseId": str(user)}


# --- reference data ---------------------------------------------------------------------------


@pytest.fixture
async def cities(owner: asyncpg.Connection) -> dict[str, uuid.UUID]:
    names = ["Villeurbanne", "Lyon", "Paris", "Lyons-la-Forêt", "Villeneuve", "Caluire-et-Cuire",
             "Saint-Lyphard", "ANNECY"]
    return {n: await make_city(owner, n, f"{i:05d}") for i, n in enumerate(names)}


async def all_cities(
    client: httpx.AsyncClient, search: str | None, first: int
) -> tuple[list[str], set[int]]:
    names: list[str] = []
    counts = set()
    after = None
    while True:
        data = ok(await gql(client, CITIES, {"search": search, "first": first, "after": after}))
        names += [e["node"]["name"] for e in data["cities"]["edges"]]
        counts.add(data["cities"]["totalCount"])
        if not data["cities"]["pageInfo"]["hasNextPage"]:
            return names, counts
        after = data["cities"]["pageInfo"]["endCursor"]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("ly", ["Lyon", "Lyons-la-Forêt", "Saint-Lyphard"]),
        ("LY", ["Lyon", "Lyons-la-Forêt", "Saint-Lyphard"]),
        ("ville", ["Villeneuve", "Villeurbanne"]),
        ("annecy", ["ANNECY"]),
        ("cuire", ["Caluire-et-Cuire"]),
        ("%", []),
        ("_", []),
        ("zzz", []),
    ],
)
async def test_cities_search_is_a_case_insensitive_substring(
    client: httpx.AsyncClient,
    owner: asyncpg.Connection,
    cities: dict[str, uuid.UUID],
    search: str,
    expected: list[str],
) -> None:
    # when an anonymous viewer searches, one city per page
    names, counts = await all_cities(client, search, 1)

    # then the matching cities come ordered by name (as the database orders names)
    ordered = [
        r["name"]
        for r in await owner.fetch(
            "SELECT name FROM cities WHERE name = ANY($1::text[]) ORDER BY name, id", expected
        )
    ]
    assert names == ordered
    assert sorted(names) == sorted(expected)
    assert counts == {len(expected)} if expected else counts == {0}


async def test_cities_without_search_page_by_name(
    client: httpx.AsyncClient, owner: asyncpg.Connection, cities: dict[str, uuid.UUID]
) -> None:
    # given two cities of the same name (the id breaks the tie)
    await make_city(owner, "Lyon", "99999")

    # when every city is listed three at a time
    names, counts = await all_cities(client, None, 3)

    # then all come, in the database's name order, counted whole on every page
    ordered = [r["name"] for r in await owner.fetch("SELECT name FROM cities ORDER BY name, id")]
    assert names == ordered
    assert counts == {9}


async def test_city_zones(client: httpx.AsyncClient, owner: asyncpg.Connection) -> None:
    city = await make_city(owner, "Lyon")
    zones = [await make_zone(owner, city, code) for code in ("UB", "UA", "N")]
    data = ok(
        await gql(client, "query($id: ID!) { node(id: $id) { ... on City { zones { id code } } } }",
                  {"id": gid("City", city)})
    )
    assert data["node"]["zones"] == [
        {"id": gid("Zone", zones[i]), "code": c} for i, c in ((2, "N"), (1, "UA"), (0, "UB"))
    ]


@pytest.fixture
async def documents(owner: asyncpg.Connection) -> dict[str, Any]:
    lyon = await make_city(owner, "Lyon")
    paris = await make_city(owner, "Paris")
    ub = await make_zone(owner, lyon, "UB")
    ua = await make_zone(owner, lyon, "UA")
    rows = {
        "Règlement UB": await make_document(owner, "Règlement UB", city_id=lyon, zone_id=ub),
        "Annexe UB": await make_document(owner, "Annexe UB", city_id=lyon, zone_id=ub),
        "Règlement UA": await make_document(owner, "Règlement UA", city_id=lyon, zone_id=ua),
        "PLU Paris": await make_document(owner, "PLU Paris", city_id=paris),
        "Zonage": await make_document(owner, "Zonage"),
    }
    return {"lyon": lyon, "paris": paris, "ub": ub, "ua": ua, "rows": rows}


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        (None, ["Annexe UB", "PLU Paris", "Règlement UA", "Règlement UB", "Zonage"]),
        ({"cityId": "lyon"}, ["Annexe UB", "Règlement UA", "Règlement UB"]),
        ({"zoneId": "ub"}, ["Annexe UB", "Règlement UB"]),
        ({"cityId": "paris"}, ["PLU Paris"]),
        ({"cityId": "paris", "zoneId": "ub"}, []),
    ],
)
async def test_documents_filter_ordered_by_title(
    client: httpx.AsyncClient,
    documents: dict[str, Any],
    filter: dict[str, str] | None,
    expected: list[str],
) -> None:
    # given documents of two cities and zones
    variables_filter = None
    if filter is not None:
        variables_filter = {
            key: gid("City" if key == "cityId" else "Zone", documents[value])
            for key, value in filter.items()
        }

    # when an anonymous viewer pages through them two at a time
    titles: list[str] = []
    counts = set()
    after = None
    while True:
        data = ok(
            await gql(client, DOCUMENTS, {"filter": variables_filter, "first": 2, "after": after})
        )
        titles += [e["node"]["title"] for e in data["documents"]["edges"]]
        counts.add(data["documents"]["totalCount"])
        if not data["documents"]["pageInfo"]["hasNextPage"]:
            break
        after = data["documents"]["pageInfo"]["endCursor"]

    # then the matching documents come ordered by title
    assert titles == expected
    assert counts == {len(expected)}


async def test_documents_filter_with_the_wrong_id_type(
    client: httpx.AsyncClient, documents: dict[str, Any]
) -> None:
    body = await gql(client, DOCUMENTS, {"filter": {"cityId": gid("Zone", documents["ub"])}})
    assert codes(body) == ["BAD_USER_INPUT"]
    body = await gql(client, DOCUMENTS, {"filter": {"zoneId": gid("City", documents["lyon"])}})
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_anonymous_reads_reference_data_but_nothing_private(
    client: httpx.AsyncClient, world: World, statements: StatementCounter
) -> None:
    # when an anonymous viewer asks for public and private nodes
    public = ["City", "Zoning", "Zone", "Typology", "Document"]
    private = ["Profile", "V1Conversation", "V2Conversation", "V1Message", "V2Message",
               "Project", "Migration", "ChatEvent"]
    public_data = ok(await gql(client, NODES, {"ids": [gid(t, world.ids[t]) for t in public]}))
    statements.reset()
    private_data = ok(await gql(client, NODES, {"ids": [gid(t, world.ids[t]) for t in private]}))
    private_statements = statements.total
    listing = ok(await gql(client, "{ cities { totalCount } documents { totalCount } }"))

    # then reference data is readable, private objects are null (without any SQL)
    assert [n["__typename"] for n in public_data["nodes"]] == public
    assert private_data["nodes"] == [None] * len(private)
    assert private_statements == 0
    assert listing == {"cities": {"totalCount": 1}, "documents": {"totalCount": 1}}


async def test_another_users_profile_is_null_but_an_admin_reads_it(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    admin = await make_user(owner, "Admin", is_admin=True)
    query = "query($id: ID!) { node(id: $id) { ... on Profile { fullName isAdmin } } }"
    as_user = ok(await gql(client, query, {"id": gid("Profile", world.other)}, user=world.user))
    as_admin = ok(await gql(client, query, {"id": gid("Profile", world.other)}, user=admin))
    assert as_user["node"] is None
    assert as_admin["node"] == {"fullName": "Dominique Bernard", "isAdmin": False}


async def test_chat_event_node_relations(client: httpx.AsyncClient, world: World) -> None:
    # when the user reads their event by id
    data = ok(
        await gql(
            client,
            """query($id: ID!) { node(id: $id) { ... on ChatEvent {
              source modelName tokensTotal costTotal createdAt user { databaseId } } } }""",
            {"id": gid("ChatEvent", world.ids["ChatEvent"])},
            user=world.user,
        )
    )

    # then its fields come, costTotal as a string
    assert data["node"] == {
        "source": "V1",
        "modelName": "gpt-4o-mini",
        "tokensTotal": 100,
        "costTotal": "0.0100",
        "createdAt": at(0).isoformat(),
        "user": {"databaseId": str(world.user)},
    }


async def test_zone_and_zoning_nodes(client: httpx.AsyncClient, world: World) -> None:
    data = ok(
        await gql(
            client,
            """query($zone: ID!, $zoning: ID!) {
              zone: node(id: $zone) { ... on Zone { code label city { name } zoning { name } } }
              zoning: node(id: $zoning) { ... on Zoning { name city { name } } } }""",
            {"zone": gid("Zone", world.ids["Zone"]), "zoning": gid("Zoning", world.ids["Zoning"])},
        )
    )
    assert data == {
        "zone": {
            "code": "UB",
            "label": "Zone UB",
            "city": {"name": "Lyon"},
            "zoning": {"name": "PLU"},
        },
        "zoning": {"name": "PLU", "city": {"name": "Lyon"}},
    }


CONNECTIONS = {
    "cities": "query($first: Int) { cities(first: $first) { totalCount edges { cursor } } }",
    "documents": "query($first: Int) { documents(first: $first) { totalCount edges { cursor } } }",
    "projects": "query($first: Int) { projects(first: $first) { totalCount edges { cursor } } }",
}


@pytest.mark.parametrize("name", sorted(CONNECTIONS))
async def test_every_connection_checks_first(
    client: httpx.AsyncClient, owner: asyncpg.Connection, name: str
) -> None:
    # given 21 rows of each kind
    user = await make_user(owner)
    for i in range(21):
        await make_city(owner, f"Ville {i:02d}")
        await make_document(owner, f"Document {i:02d}")
        await make_project(owner, user, name=f"Projet {i:02d}")

    # when first is out of range, null, or at its bounds
    results = {
        first: await gql(client, CONNECTIONS[name], {"first": first}, user=user)
        for first in (0, 101, -1, None, 1, 100)
    }

    # then 1..100 is accepted, null is the default of 20, anything else is BAD_USER_INPUT
    for first in (0, 101, -1):
        assert codes(results[first]) == ["BAD_USER_INPUT"], (first, results[first])
    assert len(ok(results[None])[name]["edges"]) == 20
    assert len(ok(results[1])[name]["edges"]) == 1
    assert len(ok(results[100])[name]["edges"]) == 21
    assert ok(results[None])[name]["totalCount"] == 21


async def test_project_conversations_checks_first(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    # given a project with 21 conversations
    user = await make_user(owner)
    project = await make_project(owner, user, name="Maison")
    for minute in range(21):
        await make_v2_conversation(owner, user, project_id=project, last=minute)

    # when its conversations are read with various page sizes
    results = {
        first: await gql(
            client, PROJECT_CONVERSATIONS, {"id": gid("Project", project), "first": first},
            user=user,
        )
        for first in (0, 101, None)
    }

    # then out-of-range sizes are refused and null means 20
    assert codes(results[0]) == ["BAD_USER_INPUT"]
    assert codes(results[101]) == ["BAD_USER_INPUT"]
    page = ok(results[None])["node"]["conversations"]
    assert len(page["edges"]) == 20
    assert page["totalCount"] == 21
    assert page["pageInfo"]["hasNextPage"] is True


async def test_a_field_error_next_to_sql_backed_siblings_is_a_coded_error(
    client: httpx.AsyncClient, owner: asyncpg.Connection, engine: Any
) -> None:
    # given a project with documents and conversations
    user = await make_user(owner)
    project = await make_project(owner, user, name="Maison")
    await make_v2_conversation(owner, user, project_id=project)

    # when its conversations are asked with first: 0 next to fields that need SQL
    body = await gql(client, PROJECT, {"id": gid("Project", project), "first": 0}, user=user)

    # then the error is BAD_USER_INPUT and the connection went back to the pool
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] == {"node": None}
    assert in_use(engine) == 0
