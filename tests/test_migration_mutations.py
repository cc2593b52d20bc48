"""migrateConversation / revertMigration through the HTTP app, against a real Postgres."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.store import migration as store
from resolvers.ids import to_global_id
from tests.conftest import bearer
from tests.factories import (
    insert,
    make_document,
    make_project,
    make_user,
    make_v1_conversation,
    make_v2_conversation,
)

MIGRATE = """
mutation Migrate($id: ID!, $project: ID) {
  migrateConversation(input: {conversationId: $id, projectId: $project}) {
    alreadyMigrated
    migration { id status migratedAt revertedAt }
    conversation { id databaseId messageCount documentCount lastMessageAt title
      migratedFrom { id } }
    project { id databaseId status }
  }
}
"""
REVERT = """
mutation Revert($id: ID!) {
  revertMigration(input: {conversationId: $id}) {
    migration { status revertedAt }
    v1Conversation { id }
  }
}
"""
V1_TABLES = ("chat_conversations", "chat_messages", "research_history")
CHECKSUM = "SELECT md5(coalesce(string_agg(t::text, '' ORDER BY id), '')) FROM {} t"
V2_MESSAGES = """
SELECT id, user_id, role, message, conversation_turn, reply_to_message_id, metadata,
       created_at, referenced_documents
FROM v2_messages WHERE conversation_id = $1 ORDER BY created_at, id
"""
V1_MESSAGES = """
SELECT id, user_id, role, message, conversation_turn, reply_to_message_id, metadata,
       created_at, document_id
FROM chat_messages WHERE conversation_id = $1 ORDER BY created_at, id
"""


async def gql(
    client: httpx.AsyncClient,
    query: str,
    user: uuid.UUID,
    role: str = "authenticated",
    **variables: Any,
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=bearer(str(user), role)
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def v1_checksums(conn: asyncpg.Connection) -> dict[str, str]:
    return {t: await conn.fetchval(CHECKSUM.format(t)) for t in V1_TABLES}


async def conversation_with_roles(conn: asyncpg.Connection, user: uuid.UUID) -> uuid.UUID:
    """A v1 conversation with a document, all three roles and a reply chain."""
    doc = await make_document(conn, "Règlement de la zone UA — Rennes")
    cid = await make_v1_conversation(conn, user, document_id=doc, last=30)
    system = await insert(conn, "chat_messages", conversation_id=cid, user_id=user,
                          role="system", message="Tu es un assistant PLU.", conversation_turn=0,
                          created_at=_at(0), metadata={"model": "gpt-4o-mini"})
    question = await insert(conn, "chat_messages", conversation_id=cid, user_id=user,
                            role="user", message="Quelle hauteur maximale ?", conversation_turn=1,
                            reply_to_message_id=system, created_at=_at(1))
    await insert(conn, "chat_messages", conversation_id=cid, user_id=user, role="assistant",
                 message="12 mètres à l'égout.", conversation_turn=1, document_id=doc,
                 reply_to_message_id=question, created_at=_at(2), metadata={"tokens": 42})
    return cid


def _at(minutes: int) -> Any:
    from tests.factories import at

    return at(minutes)


async def test_migration_copies_field_by_field_and_leaves_v1_untouched(
    owner: asyncpg.Connection, client: httpx.AsyncClient
) -> None:
    # given
    user = await make_user(owner)
    v1 = await conversation_with_roles(owner, user)
    await insert(owner, "analytics.chat_events", conversation_id=v1, user_id=user,
                 metadata={"source": "v1"}, tokens_total=10)
    before = await v1_checksums(owner)
    events = await owner.fetchval(CHECKSUM.format("analytics.chat_events"))
    # when
    body = await gql(client, MIGRATE, user, id=to_global_id("V1Conversation", v1))
    # then
    assert "errors" not in body, body
    payload = body["data"]["migrateConversation"]
    assert payload["alreadyMigrated"] is False
    assert payload["migration"]["status"] == "COMPLETED"
    conversation = payload["conversation"]
    assert conversation["messageCount"] == 3
    assert conversation["documentCount"] == 1
    assert conversation["title"] == "Règlement de la zone UA — Rennes"
    assert conversation["migratedFrom"] == {"id": to_global_id("V1Conversation", v1)}
    assert payload["project"]["status"] == "DRAFT"
    assert await v1_checksums(owner) == before
    # the migration writes no analytics event: a v1 event stays counted as v1
    assert await owner.fetchval(CHECKSUM.format("analytics.chat_events")) == events

    v2 = uuid.UUID(conversation["databaseId"])
    old = await owner.fetch(V1_MESSAGES, v1)
    new = await owner.fetch(V2_MESSAGES, v2)
    assert len(new) == len(old) == 3
    id_map = {o["id"]: n["id"] for o, n in zip(old, new, strict=True)}
    for o, n in zip(old, new, strict=True):
        assert (n["user_id"], n["role"], n["message"], n["conversation_turn"], n["created_at"]) == (
            o["user_id"], o["role"], o["message"], o["conversation_turn"], o["created_at"])
        assert n["reply_to_message_id"] == (
            id_map[o["reply_to_message_id"]] if o["reply_to_message_id"] else None
        )
        import json

        expected_meta = {
            **(json.loads(o["metadata"]) if o["metadata"] else {}),
            "migrated_from_v1": True,
        }
        assert json.loads(n["metadata"]) == expected_meta
        assert n["referenced_documents"] == ([o["document_id"]] if o["document_id"] else [])
    live = await owner.fetchrow(
        "SELECT c.message_count, c.document_count, c.last_message_at, "
        "(SELECT count(*) FROM v2_messages m WHERE m.conversation_id = c.id) AS messages, "
        "(SELECT max(created_at) FROM v2_messages m WHERE m.conversation_id = c.id) AS last, "
        "(SELECT count(*) FROM v2_conversation_documents l WHERE l.conversation_id = c.id "
        " AND l.added_by = 'migration') AS links "
        "FROM v2_conversations c WHERE c.id = $1", v2)
    assert live["message_count"] == live["messages"] == 3
    assert live["document_count"] == live["links"] == 1
    assert live["last_message_at"] == live["last"]

    # and a revert removes the copy (and the project it created), leaving v1 as it was
    reverted = await gql(client, REVERT, user, id=to_global_id("V1Conversation", v1))
    assert "errors" not in reverted, reverted
    assert reverted["data"]["revertMigration"]["migration"]["status"] == "REVERTED"
    assert reverted["data"]["revertMigration"]["migration"]["revertedAt"] is not None
    assert await owner.fetchval("SELECT count(*) FROM v2_conversations") == 0
    assert await owner.fetchval("SELECT count(*) FROM v2_messages") == 0
    assert await owner.fetchval("SELECT count(*) FROM v2_projects") == 0
    assert await v1_checksums(owner) == before


async def test_repeat_returns_first_result_and_migrating_again_reuses_the_row(
    owner: asyncpg.Connection, client: httpx.AsyncClient
) -> None:
    user = await make_user(owner)
    v1 = await make_v1_conversation(owner, user, messages=4)
    gid = to_global_id("V1Conversation", v1)
    first = (await gql(client, MIGRATE, user, id=gid))["data"]["migrateConversation"]
    again = (await gql(client, MIGRATE, user, id=gid))["data"]["migrateConversation"]
    assert again["alreadyMigrated"] is True
    assert again["conversation"]["id"] == first["conversation"]["id"]
    assert await owner.fetchval("SELECT count(*) FROM v2_conversations") == 1

    await gql(client, REVERT, user, id=first["conversation"]["id"])  # by the v2 id
    third = (await gql(client, MIGRATE, user, id=gid))["data"]["migrateConversation"]
    assert third["alreadyMigrated"] is False
    assert third["migration"]["id"] == first["migration"]["id"]
    assert third["migration"]["revertedAt"] is None
    assert await owner.fetchval("SELECT count(*) FROM migration_tracking") == 1


async def test_concurrent_calls_make_exactly_one_copy(
    owner: asyncpg.Connection, client: httpx.AsyncClient
) -> None:
    user = await make_user(owner)
    v1 = await make_v1_conversation(owner, user, messages=6)
    gid = to_global_id("V1Conversation", v1)
    bodies = await asyncio.gather(*(gql(client, MIGRATE, user, id=gid) for _ in range(20)))
    assert all("errors" not in b for b in bodies), [b.get("errors") for b in bodies]
    payloads = [b["data"]["migrateConversation"] for b in bodies]
    assert {p["conversation"]["id"] for p in payloads} == {payloads[0]["conversation"]["id"]}
    assert sorted(p["alreadyMigrated"] for p in payloads) == [False] + [True] * 19
    assert await owner.fetchval("SELECT count(*) FROM v2_conversations") == 1
    assert await owner.fetchval("SELECT count(*) FROM v2_messages") == 6
    assert await owner.fetchval("SELECT count(*) FROM migration_tracking") == 1


async def test_a_fault_after_the_messages_are_copied_leaves_nothing(
    owner: asyncpg.Connection, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await make_user(owner)
    v1 = await make_v1_conversation(owner, user, messages=4, document_id=await make_document(owner))
    gid = to_global_id("V1Conversation", v1)
    # The completed tracking row is read back after every row is copied: make that fail.
    async def broken(*_: object) -> None:
        raise RuntimeError("injected fault after the copy")

    monkeypatch.setattr(store, "tracking_row", broken)
    failed = await gql(client, MIGRATE, user, id=gid)
    assert failed["data"] is None
    assert failed["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert "injected" not in str(failed)
    for table in ("v2_projects", "v2_conversations", "v2_messages", "migration_tracking"):
        assert await owner.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    monkeypatch.undo()
    retried = await gql(client, MIGRATE, user, id=gid)
    assert retried["data"]["migrateConversation"]["conversation"]["messageCount"] == 4


async def test_rights_and_bad_input(owner: asyncpg.Connection, client: httpx.AsyncClient) -> None:
    alice = await make_user(owner, "Alice Durand")
    bob = await make_user(owner, "Bob Petit")
    admin = await make_user(owner, "Hélène Admin", is_admin=True)
    v1 = await make_v1_conversation(owner, alice, messages=2)
    gid = to_global_id("V1Conversation", v1)
    alice_project = await make_project(owner, alice, name="Maison")
    bob_project = await make_project(owner, bob, name="Garage")
    v2 = await make_v2_conversation(owner, alice)

    cases = [
        (bob, {"id": gid}, "NOT_FOUND"),
        (alice, {"id": to_global_id("V2Conversation", v2)}, "BAD_USER_INPUT"),
        (alice, {"id": to_global_id("City", uuid.uuid4())}, "BAD_USER_INPUT"),
        (alice, {"id": "not-an-id"}, "BAD_USER_INPUT"),
        (alice, {"id": to_global_id("V1Conversation", uuid.uuid4())}, "NOT_FOUND"),
        (alice, {"id": gid, "project": to_global_id("Project", bob_project)}, "NOT_FOUND"),
        (admin, {"id": gid, "project": to_global_id("Project", bob_project)}, "FORBIDDEN"),
    ]
    for viewer, variables, code in cases:
        body = await gql(client, MIGRATE, viewer, **variables)
        assert body["errors"][0]["extensions"]["code"] == code, (variables, body)
    assert await owner.fetchval("SELECT count(*) FROM migration_tracking") == 0

    body = await gql(client, REVERT, alice, id=gid)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"

    anonymous = await client.post("/graphql", json={"query": MIGRATE, "variables": {"id": gid}})
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    # the admin migrates Alice's conversation into Alice's existing project
    done = await gql(client, MIGRATE, admin, id=gid, project=to_global_id("Project", alice_project))
    assert "errors" not in done, done
    assert done["data"]["migrateConversation"]["project"]["databaseId"] == str(alice_project)
    owner_of_copy = await owner.fetchval(
        "SELECT user_id FROM v2_conversations WHERE project_id = $1", alice_project
    )
    assert owner_of_copy == alice
    # reverting keeps a project the migration did not create
    await gql(client, REVERT, alice, id=gid)
    assert (
        await owner.fetchval("SELECT count(*) FROM v2_projects WHERE id = $1", alice_project) == 1
    )


async def test_service_role_may_migrate_any_conversation(
    owner: asyncpg.Connection, client: httpx.AsyncClient
) -> None:
    alice = await make_user(owner)
    v1 = await make_v1_conversation(owner, alice, messages=2)
    body = await gql(
        client, MIGRATE, uuid.uuid4(), "service_role", id=to_global_id("V1Conversation", v1)
    )
    assert "errors" not in body, body
    assert body["data"]["migrateConversation"]["conversation"]["messageCount"] == 2


REPORT = """
{ migrationReport { ok notMigrated statuses { status count }
  problems { kind description v1ConversationId detail } failed { kind } } }
"""


async def test_migration_report_finds_a_corrupted_copy_and_drift(
    owner: asyncpg.Connection, client: httpx.AsyncClient
) -> None:
    user = await make_user(owner)
    other = await make_user(owner, "Bob Petit")
    migrated = await make_v1_conversation(owner, user, messages=4)
    await make_v1_conversation(owner, user, messages=2)  # never migrated
    await make_v1_conversation(owner, other, messages=2)  # someone else's
    await gql(client, MIGRATE, user, id=to_global_id("V1Conversation", migrated))

    clean = (await gql(client, REPORT, user))["data"]["migrationReport"]
    assert clean["ok"] is True
    assert clean["notMigrated"] == 1  # only what the viewer may see
    assert {"status": "COMPLETED", "count": 1} in clean["statuses"]

    await owner.execute(
        "UPDATE v2_messages SET message = 'altered' WHERE id = "
        "(SELECT id FROM v2_messages ORDER BY created_at LIMIT 1)"
    )
    await insert(owner, "chat_messages", conversation_id=migrated, user_id=user, role="user",
                 message="written after the migration")  # created_at defaults to now()
    report = (await gql(client, REPORT, user))["data"]["migrationReport"]
    assert report["ok"] is False
    kinds = {p["kind"] for p in report["problems"]}
    assert {"text", "drift"} <= kinds, report
    assert all(p["v1ConversationId"] == str(migrated) for p in report["problems"])

    anonymous = await client.post("/graphql", json={"query": REPORT})
    assert anonymous.json()["data"]["migrationReport"] is None
