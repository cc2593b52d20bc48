"""The write mutations of DESIGN §9 over HTTP, on a real PostgreSQL: who may write what, what
each write leaves in both stores and in analytics, and that bad input or a failure leaves
nothing behind."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.store import chat_writes
from tests.factories import (
    insert,
    make_city,
    make_document,
    make_project,
    make_user,
    make_v1_conversation,
    make_v2_conversation,
)
from tests.graphql import codes, gid, gql, ok

CREATE = """
mutation ($input: CreateProjectInput!) {
  createProject(input: $input) {
    project { id name status projectType firstEditedAt owner { databaseId } mainCity { name } }
  }
}
"""
UPDATE = """
mutation ($input: UpdateProjectInput!) {
  updateProject(input: $input) {
    project { name description status firstEditedAt starred updatedAt }
  }
}
"""
START = """
mutation ($input: StartConversationInput!) {
  startConversation(input: $input) {
    routedTo
    conversation { __typename id source ... on V2Conversation { project { status } } }
    message { text conversationTurn role }
  }
}
"""
POST = """
mutation ($input: PostMessageInput!) {
  postMessage(input: $input) {
    message { id source text role conversationTurn }
    conversation { id source lastMessageAt ... on V2Conversation { messageCount } }
    event { id source tokensTotal }
  }
}
"""
ARCHIVE = """
mutation ($input: ArchiveConversationInput!) {
  archiveConversation(input: $input) {
    conversation { isActive ... on V2Conversation { archivedAt } }
  }
}
"""

COUNTS = {
    "v2": """
    SELECT c.message_count, (SELECT count(*) FROM v2_messages m WHERE m.conversation_id = c.id),
      c.last_message_at = (SELECT max(created_at) FROM v2_messages m
                           WHERE m.conversation_id = c.id)
    FROM v2_conversations c WHERE c.id = $1
    """,
    "v1": """
    SELECT (SELECT count(*) FROM chat_messages m WHERE m.conversation_id = c.id),
      (SELECT count(*) FROM chat_messages m WHERE m.conversation_id = c.id),
      c.last_message_at = (SELECT max(created_at) FROM chat_messages m
                           WHERE m.conversation_id = c.id)
    FROM chat_conversations c WHERE c.id = $1
    """,
}
EVENTS = "SELECT count(*) FROM analytics.chat_events WHERE conversation_id = $1 AND metadata->>'source' = $2"  # noqa: E501


@pytest.fixture
async def people(owner: asyncpg.Connection) -> dict[str, uuid.UUID]:
    return {
        "user": await make_user(owner, "Camille Martin"),
        "other": await make_user(owner, "Julien Bernard"),
        "admin": await make_user(owner, "Hélène Rousseau", is_admin=True),
    }


def post_input(conversation: str, text: str = "Quelle hauteur ?", **extra: Any) -> dict[str, Any]:
    return {"input": {"conversationId": conversation, "text": text, **extra}}


async def snapshot(owner: asyncpg.Connection) -> dict[str, Any]:
    """Everything a write could touch."""
    tables = ["v2_projects", "v2_conversations", "v2_messages", "v2_conversation_documents",
              "chat_conversations", "chat_messages", "analytics.chat_events",
              "mwplu_idempotency_keys", "feature_flag_evaluations"]
    return {t: await owner.fetch(f"SELECT * FROM {t} ORDER BY id" if t != "mwplu_idempotency_keys"
                                 else f"SELECT * FROM {t} ORDER BY key") for t in tables}


# -- projects ----------------------------------------------------------------------------------


async def test_a_user_creates_a_draft_project(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    city = await make_city(owner, "Lyon")
    project = ok(await gql(client, CREATE, {"input": {
        "name": "Extension garage", "projectType": "extension", "mainCityId": gid("City", city),
        "geoLon": "4.8357000", "geoLat": "45.7640000", "metadata": {"parcel": "AB 12"},
    }}, user=people["user"]))["createProject"]["project"]
    assert project["status"] == "DRAFT" and project["firstEditedAt"] is None
    assert project["owner"] == {"databaseId": str(people["user"])}
    assert project["mainCity"] == {"name": "Lyon"}
    assert project["projectType"] == "extension"


@pytest.mark.parametrize(
    "given",
    [
        {"projectType": "castle"},
        {"mainCityId": gid("Zone", uuid.uuid4())},
        {"mainCityId": gid("City", uuid.uuid4())},  # no such city
        {"geoLat": "91"},
        {"geoLon": "-180.5"},
    ],
)
async def test_bad_project_input_writes_nothing(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection,
    given: dict[str, Any],
) -> None:
    before = await snapshot(owner)
    body = await gql(client, CREATE, {"input": {"name": "x", **given}}, user=people["user"])
    assert codes(body) == ["BAD_USER_INPUT"] and body["data"] is None
    assert await snapshot(owner) == before


async def test_creating_needs_a_signed_in_user(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    before = await snapshot(owner)
    assert codes(await gql(client, CREATE, {"input": {"name": "x"}})) == ["UNAUTHENTICATED"]
    assert await snapshot(owner) == before


async def test_the_first_edit_of_a_draft_activates_it(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    project = await make_project(owner, people["user"], name="Brouillon", status="draft",
                                 description="à compléter")
    edited = ok(await gql(client, UPDATE, {"input": {
        "projectId": gid("Project", project), "name": "Maison", "description": None,
    }}, user=people["user"]))["updateProject"]["project"]
    assert edited["name"] == "Maison" and edited["description"] is None
    assert edited["status"] == "ACTIVE" and edited["firstEditedAt"] is not None
    assert edited["starred"] is False
    again = ok(await gql(client, UPDATE, {"input": {
        "projectId": gid("Project", project), "starred": True, "status": "COMPLETED",
    }}, user=people["user"]))["updateProject"]["project"]
    assert again["name"] == "Maison" and again["starred"] is True  # omitted: unchanged
    assert again["status"] == "COMPLETED"
    assert again["firstEditedAt"] == edited["firstEditedAt"]


async def test_a_status_given_on_the_first_edit_is_kept(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    project = await make_project(owner, people["user"], status="draft")
    edited = ok(await gql(client, UPDATE, {"input": {
        "projectId": gid("Project", project), "status": "ARCHIVED",
    }}, user=people["user"]))["updateProject"]["project"]
    assert edited["status"] == "ARCHIVED" and edited["firstEditedAt"] is not None


@pytest.mark.parametrize(("viewer", "role", "expected"), [
    ("other", "authenticated", ["NOT_FOUND"]),
    ("admin", "authenticated", ["NOT_FOUND"]),  # admins read everyone's, write their own
    (None, "authenticated", ["UNAUTHENTICATED"]),
    ("other", "service_role", []),
])
async def test_who_may_edit_a_project(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection,
    viewer: str | None, role: str, expected: list[str],
) -> None:
    project = await make_project(owner, people["user"], name="À moi", status="active")
    body = await gql(client, UPDATE, {"input": {"projectId": gid("Project", project),
                                                "name": "Volé"}},
                     user=people[viewer] if viewer else None, role=role)
    assert codes(body) == expected
    name = await owner.fetchval("SELECT name FROM v2_projects WHERE id = $1", project)
    assert name == ("Volé" if not expected else "À moi")


# -- starting conversations: routed by the flag ----------------------------------------------------


async def set_flag(owner: asyncpg.Connection, *, enabled: bool, rollout: int = 0,
                   targets: tuple[uuid.UUID, ...] = ()) -> None:
    await owner.execute(
        "UPDATE feature_flags SET enabled = $1, rollout_percentage = $2, target_user_ids = $3 "
        "WHERE key = 'v2_conversations'", enabled, rollout, list(targets),
    )


async def test_the_flag_routes_new_conversations(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    await set_flag(owner, enabled=True, targets=(people["user"],))
    routed = ok(await gql(client, START, {"input": {"text": "Bonjour"}}, user=people["user"]))
    started = routed["startConversation"]
    assert started["routedTo"] == "V2"
    assert started["conversation"]["__typename"] == "V2Conversation"
    assert started["conversation"]["project"] == {"status": "DRAFT"}
    assert started["message"] == {"text": "Bonjour", "conversationTurn": 1, "role": "USER"}
    other = ok(await gql(client, START, {"input": {}}, user=people["other"]))
    assert other["startConversation"]["routedTo"] == "V1"
    assert other["startConversation"]["message"] is None
    decisions = await owner.fetch(
        "SELECT user_id, result, reason FROM feature_flag_evaluations ORDER BY evaluated_at"
    )
    assert [tuple(d) for d in decisions] == [
        (people["user"], True, "target_user"), (people["other"], False, "outside_rollout")
    ]


async def test_a_project_given_routes_to_v2_without_a_decision(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    project = await make_project(owner, people["user"], status="active")
    doc = await make_document(owner)
    body = ok(await gql(client, START, {"input": {
        "projectId": gid("Project", project), "documentIds": [gid("Document", doc)],
    }}, user=people["user"]))
    assert body["startConversation"]["routedTo"] == "V2"
    assert await owner.fetchval("SELECT count(*) FROM feature_flag_evaluations") == 0
    assert await owner.fetchval(
        "SELECT document_count FROM v2_conversations WHERE project_id = $1", project
    ) == 1


async def test_a_v1_conversation_takes_one_document_at_most(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    docs = [gid("Document", await make_document(owner)) for _ in range(2)]
    before = await snapshot(owner)
    body = await gql(client, START, {"input": {"documentIds": docs}}, user=people["user"])
    assert codes(body) == ["BAD_USER_INPUT"]
    assert await snapshot(owner) == before  # not even the routing decision
    one = ok(await gql(client, START, {"input": {"documentIds": docs[:1], "text": "PLU ?"}},
                       user=people["user"]))["startConversation"]
    assert one["routedTo"] == "V1" and one["message"]["conversationTurn"] == 1


async def test_another_users_project_is_not_found(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    project = await make_project(owner, people["user"])
    before = await snapshot(owner)
    for viewer in ("other", "admin"):
        body = await gql(client, START, {"input": {"projectId": gid("Project", project)}},
                         user=people[viewer])
        assert codes(body) == ["NOT_FOUND"]
    assert await snapshot(owner) == before


# -- posting messages --------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["v1", "v2"])
async def test_a_post_writes_the_message_the_counts_and_one_event(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection,
    source: str,
) -> None:
    make = make_v1_conversation if source == "v1" else make_v2_conversation
    conversation = await make(owner, people["user"], messages=3)
    type_name = f"{source.upper()}Conversation"
    posted = ok(await gql(client, POST, post_input(
        gid(type_name, conversation), tokensTotal=42, aiModelUsed="gpt-4o-mini",
    ), user=people["user"]))["postMessage"]
    assert posted["message"]["source"] == source.upper()
    assert posted["message"]["conversationTurn"] == 3  # the factory's turns were 1, 1, 2
    assert posted["event"] == {"id": posted["event"]["id"], "source": source.upper(),
                               "tokensTotal": 42}
    count, live, latest = await owner.fetchrow(COUNTS[source], conversation)
    assert count == live == 4 and latest is True
    assert await owner.fetchval(EVENTS, conversation, source) == 1


@pytest.mark.parametrize("source", ["v1", "v2"])
async def test_fifty_concurrent_posts_are_all_counted(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection,
    source: str,
) -> None:
    make = make_v1_conversation if source == "v1" else make_v2_conversation
    conversation = await make(owner, people["user"])
    target = gid(f"{source.upper()}Conversation", conversation)
    bodies = await asyncio.gather(*(
        gql(client, POST, post_input(target, f"message {i}"), user=people["user"])
        for i in range(50)
    ))
    assert all(codes(b) == [] for b in bodies)
    count, live, latest = await owner.fetchrow(COUNTS[source], conversation)
    assert count == live == 50 and latest is True
    turns = await owner.fetch(
        f"SELECT conversation_turn FROM {chat_writes.STORE_TABLES[source][1]} "
        "WHERE conversation_id = $1 ORDER BY conversation_turn", conversation
    )
    assert [t[0] for t in turns] == list(range(1, 51))
    assert await owner.fetchval(EVENTS, conversation, source) == 50


async def test_a_retry_with_the_same_key_returns_the_first_result(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    conversation = gid("V2Conversation", await make_v2_conversation(owner, people["user"]))
    given = post_input(conversation, idempotencyKey="send-1")
    bodies = await asyncio.gather(*(gql(client, POST, given, user=people["user"])
                                    for _ in range(5)))
    results = [ok(b)["postMessage"] for b in bodies]
    assert len({(r["message"]["id"], r["event"]["id"]) for r in results}) == 1
    assert await owner.fetchval("SELECT count(*) FROM v2_messages") == 1
    assert await owner.fetchval("SELECT count(*) FROM analytics.chat_events") == 1
    # another key, or the same key from another conversation, is a new message
    ok(await gql(client, POST, post_input(conversation, idempotencyKey="send-2"),
                 user=people["user"]))
    assert await owner.fetchval("SELECT count(*) FROM v2_messages") == 2


async def test_a_migrated_v1_conversation_is_read_only(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    v1 = await make_v1_conversation(owner, people["user"], messages=2)
    migrated = ok(await gql(client, """
        mutation ($id: ID!) { migrateConversation(input: {conversationId: $id}) {
          conversation { id } } }""", {"id": gid("V1Conversation", v1)}, user=people["user"]))
    copy = migrated["migrateConversation"]["conversation"]["id"]
    before = await snapshot(owner)
    body = await gql(client, POST, post_input(gid("V1Conversation", v1)), user=people["user"])
    assert codes(body) == ["CONFLICT"]
    assert body["errors"][0]["extensions"]["v2ConversationId"] == copy
    assert await snapshot(owner) == before


@pytest.mark.parametrize(("viewer", "role", "source", "expected"), [
    ("other", "authenticated", "v1", ["NOT_FOUND"]),
    ("other", "authenticated", "v2", ["NOT_FOUND"]),
    ("admin", "authenticated", "v1", ["NOT_FOUND"]),
    ("admin", "authenticated", "v2", ["NOT_FOUND"]),
    (None, "authenticated", "v2", ["UNAUTHENTICATED"]),
    ("other", "service_role", "v1", []),
    ("other", "service_role", "v2", []),
])
async def test_who_may_post(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection,
    viewer: str | None, role: str, source: str, expected: list[str],
) -> None:
    make = make_v1_conversation if source == "v1" else make_v2_conversation
    conversation = await make(owner, people["user"])
    before = await snapshot(owner)
    body = await gql(client, POST, post_input(gid(f"{source.upper()}Conversation", conversation)),
                     user=people[viewer] if viewer else None, role=role)
    assert codes(body) == expected
    if expected:
        assert await snapshot(owner) == before
    else:  # the service role writes as the owner
        author = await owner.fetchval(
            f"SELECT user_id FROM {chat_writes.STORE_TABLES[source][1]} "
            "WHERE conversation_id = $1", conversation,
        )
        assert author == people["user"]


async def test_assistant_messages_need_the_service_role(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    conversation = gid("V2Conversation", await make_v2_conversation(owner, people["user"]))
    before = await snapshot(owner)
    refused = await gql(client, POST, post_input(conversation, role="ASSISTANT"),
                        user=people["user"])
    assert codes(refused) == ["FORBIDDEN"]
    assert await snapshot(owner) == before
    answered = ok(await gql(client, POST, post_input(conversation, role="ASSISTANT"),
                            user=people["user"], role="service_role"))
    assert answered["postMessage"]["message"]["role"] == "ASSISTANT"


async def test_bad_message_input_writes_nothing(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    mine = await make_v2_conversation(owner, people["user"], messages=1)
    elsewhere = await make_v2_conversation(owner, people["user"], messages=1)
    reply_elsewhere = await owner.fetchval(
        "SELECT id FROM v2_messages WHERE conversation_id = $1", elsewhere
    )
    target = gid("V2Conversation", mine)
    cases = [
        post_input(gid("Project", mine)),
        post_input(target, "   "),
        post_input(target, replyToId=gid("V2Message", reply_elsewhere)),
        post_input(target, replyToId=gid("V1Message", reply_elsewhere)),
        post_input(target, documentIds=[gid("Document", uuid.uuid4())]),
        post_input(target, messageType="poem"),
        post_input(target, tokensTotal=-1),
        post_input(target, costTotal="-0.5"),
        post_input(target, idempotencyKey=""),
    ]
    before = await snapshot(owner)
    for given in cases:
        body = await gql(client, POST, given, user=people["user"])
        assert codes(body) == ["BAD_USER_INPUT"], (given, body)
    assert await snapshot(owner) == before
    enum = await gql(client, POST, post_input(target, role="BOSS"), user=people["user"])
    assert codes(enum) == ["BAD_USER_INPUT"]


async def test_a_failure_after_the_message_insert_leaves_nothing(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conversation = await make_v2_conversation(owner, people["user"], messages=2)
    before = await snapshot(owner)

    written = chat_writes.insert_message

    async def broken(*args: Any, **kwargs: Any) -> Any:
        # after the statement that wrote the message, its event and the conversation's count
        inserted = await written(*args, **kwargs)
        assert inserted.message_id is not None and inserted.event_id is not None
        raise RuntimeError("analytics is down")

    monkeypatch.setattr(chat_writes, "insert_message", broken)
    body = await gql(client, POST, post_input(gid("V2Conversation", conversation)),
                     user=people["user"])
    assert codes(body) == ["INTERNAL"] and "analytics" not in str(body)
    assert await snapshot(owner) == before


# -- archiving ---------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["v1", "v2"])
async def test_archiving_a_conversation(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection,
    source: str,
) -> None:
    make = make_v1_conversation if source == "v1" else make_v2_conversation
    conversation = gid(f"{source.upper()}Conversation", await make(owner, people["user"]))
    given = {"input": {"conversationId": conversation}}
    assert codes(await gql(client, ARCHIVE, given, user=people["other"])) == ["NOT_FOUND"]
    archived = ok(await gql(client, ARCHIVE, given, user=people["user"]))
    written = archived["archiveConversation"]["conversation"]
    assert written["isActive"] is False
    if source == "v2":
        assert written["archivedAt"] is not None


async def test_a_conversation_id_is_needed_to_archive(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    project = await insert(owner, "v2_projects", user_id=people["user"])
    body = await gql(client, ARCHIVE, {"input": {"conversationId": gid("Project", project)}},
                     user=people["user"])
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_a_service_token_for_a_user_is_that_users_viewer(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID]
) -> None:
    body = ok(await gql(client, "{ viewer { databaseId } }", user=people["user"],
                        role="service_role"))
    assert body["viewer"] == {"databaseId": str(people["user"])}


async def test_a_post_costs_a_fixed_number_of_statements(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection,
    statements: Any,
) -> None:
    """Lock, the checked insert (which also writes the event: no role switch around it) and
    the payload (its three types of one row each share a statement): 3, plus the set-up,
    whatever the conversation holds."""
    for messages in (0, 30):
        conversation = await make_v2_conversation(owner, people["user"], messages=messages)
        statements.reset()
        ok(await gql(client, POST, post_input(gid("V2Conversation", conversation)),
                     user=people["user"]))
        assert (statements.reads, statements.total) == (3, 4), statements.statements


async def test_the_event_function_writes_only_for_the_callers_conversation(
    people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    """``mwplu_private.record_chat_event`` runs as its owner: called straight (as a user
    with a database session could), it writes for the caller's own conversation only, refuses
    another user's key owner, and anonymous cannot reach it at all."""
    mine = await make_v2_conversation(owner, people["user"])
    theirs = await make_v2_conversation(owner, people["other"])
    call = (
        "SELECT mwplu_private.record_chat_event('v2', $1, gen_random_uuid(), $2, NULL, NULL, "
        "NULL, NULL, $3, $4)"
    )

    async def as_role(role: str, sub: uuid.UUID | None, *args: Any) -> Any:
        async with owner.transaction():
            claims = {"role": role, **({"sub": str(sub)} if sub else {})}
            await owner.execute("SELECT set_config('request.jwt.claims', $1, true)",
                                json.dumps(claims))
            await owner.execute(f"SET LOCAL ROLE {role}")
            return await owner.fetchval(call, *args)

    user = people["user"]
    assert await as_role("authenticated", user, mine, user, user, None) is not None
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_role("authenticated", user, theirs, people["other"], user, None)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # a key in another's name
        await as_role("authenticated", user, mine, user, people["other"], "k")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # no USAGE on the schema
        await as_role("anon", None, mine, user, user, None)
    assert await as_role("service_role", None, theirs, people["other"], user, None) is not None
    assert await owner.fetchval(
        "SELECT count(*) FROM analytics.chat_events WHERE conversation_id = $1", theirs
    ) == 1


async def test_a_mutations_plan_is_reused_with_each_requests_own_input(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plan of a mutation is remembered without its input (every post has its own text),
    so each request's input must still be its own; a variable the payload's selection uses
    (a page size) still gives it its own plan."""
    from collections import OrderedDict

    from schema.engine import cache as plan_cache

    monkeypatch.setattr(plan_cache, "_plans", OrderedDict())  # whatever ran before
    conversation = gid("V2Conversation", await make_v2_conversation(owner, people["user"]))
    document = """mutation Post($input: PostMessageInput!, $n: Int) { postMessage(input: $input) {
      message { text } conversation { messages(first: $n) { edges { node { text } } } } } }"""
    before = len(plan_cache._plans)
    texts = []
    for n, text in ((1, "première"), (1, "deuxième"), (2, "troisième")):
        body = ok(await gql(client, document, {**post_input(conversation, text), "n": n},
                            user=people["user"]))
        texts.append((body["postMessage"]["message"]["text"],
                      len(body["postMessage"]["conversation"]["messages"]["edges"])))
    assert texts == [("première", 1), ("deuxième", 1), ("troisième", 2)]
    assert len(plan_cache._plans) == before + 2  # one plan per page size, not per text
    stored = await owner.fetch("SELECT message FROM v2_messages ORDER BY conversation_turn")
    assert [r["message"] for r in stored][-3:] == ["première", "deuxième", "troisième"]
    # an input refused when it is read (NUL) is refused on a remembered plan too
    refused = await gql(client, document, {**post_input(conversation, "a\u0000b"), "n": 1},
                        user=people["user"])
    assert codes(refused) == ["BAD_USER_INPUT"]
    assert await owner.fetchval("SELECT count(*) FROM v2_messages WHERE message LIKE 'a%b'") == 0
