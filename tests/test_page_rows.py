"""A page's rows are read without their ids when nothing reads them (``plan.mark_keyed``):
not written as ``id`` or ``databaseId``, not a cursor's last part, not the parent of a page
below, not looked up by id. Whatever is asked, the answer is the same."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.db import StatementCounter
from gateway.store.select import select_list
from tests.conftest import bearer
from tests.factories import make_user, make_v2_conversation
from tests.graphql import gid

# A selection on each message, and whether the page must read the messages' ids.
SELECTIONS = {
    "edges { node { text } }": False,
    "edges { node { text createdAt role } } pageInfo { hasNextPage }": False,
    "edges { node { id text } }": True,
    "edges { node { databaseId } }": True,
    "edges { cursor node { text } }": True,
    "edges { node { text } } pageInfo { endCursor }": True,
    "edges { node { text } } pageInfo { startCursor }": True,
}

# How a page's rows begin, with and without their ids.
KEYED, UNKEYED = select_list([]), select_list([], keyed=False)


async def ask(
    client: httpx.AsyncClient,
    statements: StatementCounter,
    query: str,
    node: str,
    user: uuid.UUID,
) -> dict[str, Any]:
    """``query``'s data for the node ``node`` as ``user``, the statements counted afresh."""
    statements.reset()
    response = await client.post(
        "/graphql", json={"query": query, "variables": {"id": node}}, headers=bearer(str(user))
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("selection", list(SELECTIONS))
async def test_a_pages_ids_are_read_only_when_something_reads_them(
    selection: str,
    client: httpx.AsyncClient,
    statements: StatementCounter,
    owner: asyncpg.Connection,
) -> None:
    user = await make_user(owner, "Ana")
    conversation = await make_v2_conversation(owner, user, messages=3)
    query = f"""query($id: ID!) {{ node(id: $id) {{ ... on V2Conversation {{
      messages(first: 2) {{ {selection} }} }} }} }}"""
    data = await ask(client, statements, query, gid("V2Conversation", conversation), user)
    messages = data["node"]["messages"]
    rows = await owner.fetch(
        "SELECT id, message FROM v2_messages WHERE conversation_id = $1"
        " ORDER BY created_at, id LIMIT 2",
        conversation,
    )
    nodes = [e["node"] for e in messages["edges"]]
    assert len(nodes) == 2
    for node, row in zip(nodes, rows, strict=True):
        if "text" in node:
            assert node["text"] == row["message"]
        if "id" in node:
            assert node["id"] == gid("V2Message", row["id"])
        if "databaseId" in node:
            assert node["databaseId"] == str(row["id"])
    if "cursor" in selection:
        assert all(e["cursor"] for e in messages["edges"])
    (page,) = [s for s in statements.statements if "FROM v2_messages" in s]
    keyed = SELECTIONS[selection]
    assert (f"SELECT {KEYED}" in page) is keyed, page
    assert (f"SELECT {UNKEYED}" in page) is not keyed, page


async def test_a_page_below_a_page_reads_its_parents_ids(
    client: httpx.AsyncClient, statements: StatementCounter, owner: asyncpg.Connection
) -> None:
    """Conversations in a project's page are the parents of their message pages: their ids
    are read though no field asks for them; the messages' are not."""
    user = await make_user(owner, "Ana")
    conversation = await make_v2_conversation(owner, user, messages=2)
    project = await owner.fetchval(
        "SELECT project_id FROM v2_conversations WHERE id = $1", conversation
    )
    query = """query($id: ID!) { node(id: $id) { ... on Project {
      conversations(first: 5) { edges { node { title
        messages(first: 5) { edges { node { text } } } } } } } } }"""
    data = await ask(client, statements, query, gid("Project", project), user)
    (edge,) = data["node"]["conversations"]["edges"]
    assert len(edge["node"]["messages"]["edges"]) == 2
    (conversations,) = [s for s in statements.statements if "FROM v2_conversations t" in s]
    (messages,) = [s for s in statements.statements if "FROM v2_messages" in s]
    assert f"SELECT {KEYED}" in conversations
    assert f"SELECT {UNKEYED}" in messages
