"""attachDocument, detachDocument and pinProjectDocument over HTTP (DESIGN §9)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from tests.factories import (
    make_document,
    make_project,
    make_user,
    make_v1_conversation,
    make_v2_conversation,
)
from tests.graphql import codes, gid, gql, ok

ATTACH = """
mutation ($input: AttachDocumentInput!) {
  attachDocument(input: $input) { conversation { documentCount documents { title } } }
}
"""
DETACH = """
mutation ($input: DetachDocumentInput!) {
  detachDocument(input: $input) { conversation { documentCount documents { title } } }
}
"""
PIN = """
mutation ($input: PinProjectDocumentInput!) {
  pinProjectDocument(input: $input) { project { documents { title } } }
}
"""
LINKS = "SELECT document_id, added_by, relevance_score FROM v2_conversation_documents ORDER BY 1"
PINS = "SELECT document_id, pinned, notes FROM v2_project_documents ORDER BY 1"


@pytest.fixture
async def people(owner: asyncpg.Connection) -> dict[str, uuid.UUID]:
    return {"user": await make_user(owner), "other": await make_user(owner, "Julien Bernard"),
            "admin": await make_user(owner, "Hélène Rousseau", is_admin=True)}


async def test_attach_twice_then_detach(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    conversation = gid("V2Conversation", await make_v2_conversation(owner, people["user"]))
    document = await make_document(owner, "Règlement UA")
    given = {"input": {"conversationId": conversation, "documentId": gid("Document", document),
                       "relevanceScore": 0.8}}
    for _ in range(2):
        attached = ok(await gql(client, ATTACH, given, user=people["user"]))
        assert attached["attachDocument"]["conversation"] == {
            "documentCount": 1, "documents": [{"title": "Règlement UA"}]}
    rows = await owner.fetch(LINKS)
    assert [(r["added_by"], float(r["relevance_score"])) for r in rows] == [("user", 0.8)]
    del given["input"]["relevanceScore"]
    detached = ok(await gql(client, DETACH, given, user=people["user"]))
    assert detached["detachDocument"]["conversation"] == {"documentCount": 0, "documents": []}


async def test_concurrent_attaches_keep_the_count_exact(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    conversation = await make_v2_conversation(owner, people["user"])
    documents = [await make_document(owner, f"Doc {i}") for i in range(10)]
    bodies = await asyncio.gather(*(
        gql(client, ATTACH, {"input": {"conversationId": gid("V2Conversation", conversation),
                                       "documentId": gid("Document", d)}}, user=people["user"])
        for d in documents + documents[:5]
    ))
    assert all(codes(b) == [] for b in bodies)
    assert await owner.fetchval(
        "SELECT document_count FROM v2_conversations WHERE id = $1", conversation) == 10


@pytest.mark.parametrize(("viewer", "role", "expected"), [
    ("other", "authenticated", ["NOT_FOUND"]),
    ("admin", "authenticated", ["NOT_FOUND"]),
    (None, "authenticated", ["UNAUTHENTICATED"]),
    ("other", "service_role", []),
])
async def test_who_may_link_documents(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection,
    viewer: str | None, role: str, expected: list[str],
) -> None:
    conversation = gid("V2Conversation", await make_v2_conversation(owner, people["user"]))
    project = gid("Project", await make_project(owner, people["user"]))
    document = gid("Document", await make_document(owner))
    user = people[viewer] if viewer else None
    attach = await gql(client, ATTACH, {"input": {"conversationId": conversation,
                                                  "documentId": document}}, user=user, role=role)
    pin = await gql(client, PIN, {"input": {"projectId": project, "documentId": document}},
                    user=user, role=role)
    assert codes(attach) == expected and codes(pin) == expected
    assert len(await owner.fetch(LINKS)) == len(await owner.fetch(PINS)) == (0 if expected else 1)


async def test_bad_link_input_writes_nothing(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    v1 = gid("V1Conversation", await make_v1_conversation(owner, people["user"]))
    v2 = gid("V2Conversation", await make_v2_conversation(owner, people["user"]))
    document = gid("Document", await make_document(owner))
    for given in (
        {"conversationId": v1, "documentId": document},  # v2 only
        {"conversationId": v2, "documentId": gid("Document", uuid.uuid4())},
        {"conversationId": v2, "documentId": document, "relevanceScore": 1.5},
    ):
        assert codes(await gql(client, ATTACH, {"input": given}, user=people["user"])) == [
            "BAD_USER_INPUT"]
    assert await owner.fetch(LINKS) == []


async def test_pinning_and_notes(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    project = gid("Project", await make_project(owner, people["user"]))
    document = await make_document(owner, "Plan de zonage")
    target = {"projectId": project, "documentId": gid("Document", document)}
    pinned = ok(await gql(client, PIN, {"input": {**target, "notes": "à relire"}},
                          user=people["user"]))
    assert pinned["pinProjectDocument"]["project"]["documents"] == [{"title": "Plan de zonage"}]
    ok(await gql(client, PIN, {"input": {**target, "pinned": False}}, user=people["user"]))
    assert [tuple(r) for r in await owner.fetch(PINS)] == [(document, False, "à relire")]
    ok(await gql(client, PIN, {"input": {**target, "notes": None}}, user=people["user"]))
    assert [tuple(r) for r in await owner.fetch(PINS)] == [(document, True, None)]
