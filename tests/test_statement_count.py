"""The reference query's SQL statement count does not depend on the page size (no N+1)."""

from __future__ import annotations

import uuid
from itertools import pairwise
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.db import StatementCounter
from gateway.http.graphiql import EXAMPLE_QUERY
from tests.conftest import bearer
from tests.factories import (
    at,
    insert,
    make_city,
    make_document,
    make_project,
    make_user,
    make_v1_conversation,
    make_v2_conversation,
    make_zone,
)

# The README's example query (GraphiQL opens with it; tests/test_graphiql.py holds the two equal).
REFERENCE = EXAMPLE_QUERY

# The reference query's shape, one statement per (level, type): the listing, its count and the
# conversations of each store; the message page of each store; profiles, documents, projects
# and migrations; zones, cities, typologies and the messages' documents; their cities.
MAX_READS = 15


async def arrange(conn: asyncpg.Connection, *, stray: bool = False) -> uuid.UUID:
    """An admin and ≥ 60 conversations of three users over both stores, with messages,
    documents (city, zoning, zone, typology), replies, a completed migration and projects
    with a main city and zone. Returns the admin's id.

    With ``stray``, every conversation also gets a last message that refers to a document
    the conversation is not linked to (so message documents cannot come from the
    conversation's documents)."""
    admin = await make_user(conn, "Alice Admin", is_admin=True)
    users = [await make_user(conn, f"User {i}") for i in range(3)]
    typologies = [await insert(conn, "typologies", name=f"Typologie {i}") for i in range(2)]
    documents: list[uuid.UUID] = []
    cities: list[tuple[uuid.UUID, uuid.UUID]] = []
    for i, (name, insee) in enumerate([("Lyon", "69123"), ("Paris", "75056"), ("Nice", "06088")]):
        city = await make_city(conn, name, insee)
        zone = await make_zone(conn, city, code=f"U{i}")
        zoning = await conn.fetchval("SELECT zoning_id FROM zones WHERE id = $1", zone)
        cities.append((city, zone))
        for j in range(2):
            documents.append(
                await make_document(
                    conn,
                    f"Règlement {name} {j}",
                    city_id=city,
                    zoning_id=zoning,
                    zone_id=zone,
                    typology_id=typologies[j % 2],
                )
            )
    projects = []
    for i, user in enumerate(users):
        city, zone = cities[i % len(cities)]
        projects.append(
            await make_project(
                conn, user, name=f"Projet {i}", main_city_id=city, main_zone_id=zone
            )
        )
    v1_ids = []
    for i in range(32):
        user = users[i % len(users)]
        v1_ids.append(
            await make_v1_conversation(
                conn,
                user,
                last=-2 * i,
                document_id=documents[i % len(documents)] if i % 3 else None,
                messages=2 + i % 3,
            )
        )
    for i in range(32):
        user_index = i % len(users)
        await make_v2_conversation(
            conn,
            users[user_index],
            project_id=projects[user_index],
            last=-2 * i - 1,
            messages=2 + i % 3,
            document_ids=tuple(documents[(i + k) % len(documents)] for k in range(i % 3)),
        )
    if stray:
        extra = [await make_document(conn, f"Annexe {i}", city_id=cities[i][0]) for i in range(3)]
        rows = await conn.fetch(
            "SELECT 'v1' AS source, id, user_id FROM chat_conversations "
            "UNION ALL SELECT 'v2', id, user_id FROM v2_conversations"
        )
        for i, row in enumerate(rows):
            document = extra[i % len(extra)]
            if row["source"] == "v1":
                await insert(
                    conn, "chat_messages", conversation_id=row["id"], user_id=row["user_id"],
                    role="assistant", message="annexe", document_id=document, created_at=at(-1),
                )
            else:
                await insert(
                    conn, "v2_messages", conversation_id=row["id"], user_id=row["user_id"],
                    role="assistant", message="annexe", referenced_documents=[document],
                    created_at=at(-1),
                )
                await conn.execute(
                    "UPDATE v2_conversations SET message_count = message_count + 1 WHERE id = $1",
                    row["id"],
                )
    # A completed migration: the first v1 conversation with a v2 copy.
    source = v1_ids[0]
    owner = await conn.fetchval("SELECT user_id FROM chat_conversations WHERE id = $1", source)
    copy = await make_v2_conversation(
        conn, owner, project_id=projects[users.index(owner)], last=0.5, messages=2
    )
    await insert(
        conn,
        "migration_tracking",
        v1_conversation_id=source,
        v2_conversation_id=copy,
        v2_project_id=projects[users.index(owner)],
        migration_status="completed",
        migrated_at=at(1),
    )
    return admin


async def run(client: httpx.AsyncClient, user: uuid.UUID, first: int) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": REFERENCE, "variables": {"first": first}},
        headers=bearer(str(user)),
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def show(counter: StatementCounter) -> str:
    return "\n".join(f"[{i}] {' '.join(s.split())}" for i, s in enumerate(counter.statements))


@pytest.fixture(params=[False, True], ids=["linked-documents", "stray-documents"])
async def admin(owner: asyncpg.Connection, request: pytest.FixtureRequest) -> uuid.UUID:
    return await arrange(owner, stray=request.param)


async def measure(
    client: httpx.AsyncClient, statements: StatementCounter, admin: uuid.UUID, first: int
) -> tuple[dict[str, Any], int, int, str]:
    statements.reset()
    body = await run(client, admin, first)
    return body, statements.total, statements.reads, show(statements)


async def test_reference_query_statement_count_does_not_grow_with_page_size(
    client: httpx.AsyncClient, statements: StatementCounter, admin: uuid.UUID
) -> None:
    # given ≥ 60 conversations with everything the reference query reaches
    # when it runs with a small and a large page
    small, small_total, small_reads, small_log = await measure(client, statements, admin, 5)
    large, large_total, large_reads, large_log = await measure(client, statements, admin, 50)
    print(f"first: 5  -> total {small_total}, reads {small_reads}\n{small_log}")
    print(f"first: 50 -> total {large_total}, reads {large_reads}\n{large_log}")

    # then both succeed, return full pages, and send no more statements than the shape's
    # bound: one per (level, type) (a type whose rows are all known already costs none)
    assert "errors" not in small, small
    assert "errors" not in large, large
    small_conn = small["data"]["conversations"]
    large_conn = large["data"]["conversations"]
    assert len(small_conn["edges"]) == 5
    assert len(large_conn["edges"]) == 50
    assert small_conn["totalCount"] == large_conn["totalCount"] == 65
    assert large_reads <= MAX_READS, large_log
    assert small_reads <= MAX_READS, small_log


async def test_reference_query_reaches_every_relation(
    client: httpx.AsyncClient, statements: StatementCounter, admin: uuid.UUID
) -> None:
    # given the fixture, when the admin asks for 50 conversations
    body = await run(client, admin, 50)

    # then the nested objects are all resolved (the batching does not lose anything)
    assert "errors" not in body, body
    nodes = [e["node"] for e in body["data"]["conversations"]["edges"]]
    assert {n["source"] for n in nodes} == {"V1", "V2"}
    assert all(n["owner"] and n["owner"]["fullName"] for n in nodes)
    assert any(n.get("migration") == {"status": "COMPLETED"} for n in nodes)
    with_document = [n for n in nodes if n.get("document")]
    assert with_document
    assert all(n["document"]["typology"]["name"].startswith("Typologie") for n in with_document)
    assert all(d["city"]["name"] and d["zone"]["code"] for n in nodes for d in n["documents"])
    v2 = [n for n in nodes if n["source"] == "V2"]
    assert all(n["project"]["mainCity"]["name"] and n["project"]["mainZone"]["code"] for n in v2)
    for n in nodes:
        messages = [e["node"] for e in n["messages"]["edges"]]
        assert len(messages) == n["messageCount"]
        assert messages[0]["replyTo"] is None
        chain = [m for m in messages if m["text"] != "annexe"]  # the stray ones reply to none
        assert all(m["replyTo"]["id"] == p["id"] for p, m in pairwise(chain))
        assert all(m["documents"] for m in messages if m["text"] == "annexe")
        assert all((m["author"] is None) == (m["role"] != "USER") for m in messages)
