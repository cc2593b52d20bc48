"""A newest-first listing (``created_at DESC NULLS LAST, id DESC``: projects, events, the
viewer's research of both stores) reads its page from an index in that order, alone or after
its equality filter, and stops: PostgreSQL sorts no table for it (revision 0011). Each
listing's statement is captured as the gateway sends it and explained with sorting disabled:
without such an index its plan still has to sort."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.auth import viewer_from_header
from gateway.db import StatementCounter, Viewer, begin_as
from gateway.settings import Settings
from resolvers.ids import to_global_id
from tests.conftest import bearer
from tests.factories import (
    at,
    insert,
    make_project,
    make_user,
    make_v1_conversation,
    make_v2_conversation,
)

LISTINGS = {
    "projects": "{ projects(first: 3) { edges { cursor node { name } } } }",
    "projects after a cursor": "query($after: String) { projects(first: 3, after: $after) "
    "{ edges { node { name } } } }",
    "events": "{ chatEvents(first: 3) { edges { cursor node { modelName } } } }",
    "events after a cursor": "query($after: String) { chatEvents(first: 3, after: $after) "
    "{ edges { node { modelName } } } }",
    "events of a source": "{ chatEvents(first: 3, filter: {source: V1}) "
    "{ edges { node { modelName } } } }",
    "research of both stores": "{ researchHistory(first: 3) { edges { cursor node { source } } } }",
    "research of both stores after a cursor": "query($after: String) { researchHistory("
    "first: 3, after: $after) { edges { node { source } } } }",
    "conversations of both stores": "{ conversations(first: 3, filter: {includeMigrated: true}) "
    "{ edges { cursor node { source } } } }",
    "conversations of both stores after a cursor": "query($after: String) { conversations("
    "first: 3, after: $after, filter: {includeMigrated: true}) { edges { node { source } } } }",
}


# A plan node that sorts (a Merge Append of ordered inputs names its sort key, sorting nothing).
SORT_NODE = re.compile(r"^\s*(->\s+)?(Incremental )?Sort$", re.MULTILINE)


@pytest.fixture
async def researcher(owner: asyncpg.Connection) -> uuid.UUID:
    """The viewer whose research is listed (the other listings are read as the service role),
    with rows of every listing."""
    user = await make_user(owner)
    for i in range(12):
        for table in ("research_history", "v2_research_history"):
            await insert(owner, table, user_id=user, address_input=f"{i} rue Kervégan",
                         created_at=None if i == 0 else at(i))
        project = await make_project(
            owner, user, name=f"Projet {i}", created_at=None if i == 0 else at(i)
        )
        last = None if i == 0 else i
        await make_v1_conversation(owner, user, last=last)
        await make_v2_conversation(owner, user, project_id=project, last=last)
        await insert(
            owner, "analytics.chat_events", user_id=user, model_name=f"m{i}",
            metadata={"source": "v1" if i % 2 else "v2"}, created_at=None if i == 0 else at(i),
        )
    await owner.execute(
        "ANALYZE v2_projects; ANALYZE analytics.chat_events; ANALYZE research_history; "
        "ANALYZE v2_research_history; ANALYZE chat_conversations; ANALYZE v2_conversations"
    )
    return user


async def plan_of(
    owner: asyncpg.Connection, viewer: Viewer, settings: Settings, statement: str,
    args: tuple[object, ...],
) -> str:
    """The plan of ``statement`` as ``viewer`` runs it (row-level security's filters
    included), sorting disabled."""
    try:
        await owner.execute(begin_as(viewer, settings) + "; SET LOCAL enable_sort = off")
        lines = await owner.fetch("EXPLAIN (COSTS OFF) " + statement, *args)
    finally:
        await owner.execute("ROLLBACK")
    return "\n".join(row[0] for row in lines)


@pytest.mark.parametrize("listing", list(LISTINGS))
async def test_a_newest_first_listing_is_read_in_index_order(
    client: httpx.AsyncClient,
    statements: StatementCounter,
    settings: Settings,
    owner: asyncpg.Connection,
    researcher: uuid.UUID,
    listing: str,
) -> None:
    if listing.startswith("research"):
        headers = bearer(str(researcher))
    else:
        headers = bearer(str(uuid.uuid4()), role="service_role")
    variables = {}
    if "after" in listing:  # the second page, after the first one's last cursor
        first = LISTINGS[listing.split(" after")[0]]
        response = await client.post("/graphql", json={"query": first}, headers=headers)
        (edges,) = response.json()["data"].values()
        variables = {"after": edges["edges"][-1]["cursor"]}
    statements.reset()
    response = await client.post(
        "/graphql", json={"query": LISTINGS[listing], "variables": variables}, headers=headers
    )
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    (page,) = response.json()["data"].values()
    assert len(page["edges"]) == 3

    (statement, args) = statements.read_statements()[0]
    assert "DESC NULLS LAST" in statement, statement
    viewer = viewer_from_header(headers["Authorization"], settings)
    plan = await plan_of(owner, viewer, settings, statement, args)
    assert not SORT_NODE.search(plan), plan
    assert "Index" in plan, plan
    if "after" in listing:
        # at any depth: the cursor is where the index range starts, not a filter of every row
        # before it (the deep pages below)
        assert re.search(r"Index Cond: .*ROW\(", plan), plan
        instant = "last_message_at" if "conversations" in listing else "created_at"
        filters = [line for line in plan.splitlines() if "Filter:" in line]
        assert not [f for f in filters if instant in f or "ROW(" in f], plan  # (RLS's may be)
        if "both stores" in listing:  # the rows without an instant: a range of the statement
            assert re.search(rf"Index Cond: .*\({instant} IS NULL\)", plan), plan


PAGES = {
    "projects": "query($after: String) { projects(first: 5, after: $after) "
    "{ edges { cursor node { name } } pageInfo { hasNextPage } } }",
    "chatEvents": "query($after: String) { chatEvents(first: 5, after: $after) "
    "{ edges { cursor node { modelName } } pageInfo { hasNextPage } } }",
}
NAMES = {"projects": "name", "chatEvents": "modelName"}


@pytest.mark.parametrize("listing", list(PAGES))
async def test_pages_cover_the_listing_once_the_rows_without_an_instant_last(
    client: httpx.AsyncClient, statements: StatementCounter, researcher: uuid.UUID,
    listing: str,
) -> None:
    """Paged 5 at a time, 12 rows, the first created without an instant: each row once, newest
    first, that one last. The page that reaches the rows without an instant reads them with a
    second statement (they are a second range of the index)."""
    headers = bearer(str(uuid.uuid4()), role="service_role")
    seen: list[str] = []
    reads: list[int] = []
    after = None
    while True:
        statements.reset()
        response = await client.post(
            "/graphql", json={"query": PAGES[listing], "variables": {"after": after}},
            headers=headers,
        )
        assert response.status_code == 200 and "errors" not in response.json(), response.text
        page = response.json()["data"][listing]
        reads.append(statements.reads)
        seen += [edge["node"][NAMES[listing]] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["edges"][-1]["cursor"]
    prefix = "Projet " if listing == "projects" else "m"
    assert seen == [f"{prefix}{i}" for i in [*range(11, 0, -1), 0]]
    assert reads == [1, 1, 2]


UNIFIED = {
    "conversations": "query($after: String, $first: Int) { conversations(first: $first, "
    "after: $after) { edges { cursor node { id lastMessageAt } } pageInfo { hasNextPage } } }",
    "researchHistory": "query($after: String, $first: Int) { researchHistory(first: $first, "
    "after: $after) { edges { cursor node { id createdAt } } pageInfo { hasNextPage } } }",
}


@pytest.mark.parametrize("listing", list(UNIFIED))
async def test_pages_of_both_stores_cover_the_listing_once(
    client: httpx.AsyncClient, researcher: uuid.UUID, listing: str
) -> None:
    """The listings of both stores paged 5 at a time, each store's rows read as index ranges
    after the cursor: the pages put together are the whole listing read as one page, and
    the rows without an instant (one per store) come last."""
    headers = bearer(str(researcher))

    async def page(first: int, after: str | None) -> dict[str, Any]:
        response = await client.post(
            "/graphql",
            json={"query": UNIFIED[listing], "variables": {"first": first, "after": after}},
            headers=headers,
        )
        assert response.status_code == 200 and "errors" not in response.json(), response.text
        return response.json()["data"][listing]  # type: ignore[no-any-return]

    whole = [edge["node"] for edge in (await page(100, None))["edges"]]
    assert len(whole) == 24
    instant = "lastMessageAt" if listing == "conversations" else "createdAt"
    assert [node[instant] for node in whole[-2:]] == [None, None]
    assert all(node[instant] is not None for node in whole[:-2])
    for size in (1, 5):  # (one at a time: cursors on the rows without an instant too)
        paged: list[dict[str, Any]] = []
        after = None
        while True:
            current = await page(size, after)
            paged += [edge["node"] for edge in current["edges"]]
            if not current["pageInfo"]["hasNextPage"]:
                break
            after = current["edges"][-1]["cursor"]
        assert paged == whole, size


MESSAGES = (
    "query($id: ID!, $first: Int, $after: String) { node(id: $id) { ... on Conversation { "
    "messages(first: $first, after: $after) { edges { cursor node { text createdAt } } "
    "pageInfo { hasNextPage } } } } }"
)


@pytest.fixture
async def long_conversations(owner: asyncpg.Connection) -> dict[str, uuid.UUID]:
    """A conversation of each store with 12 messages, oldest first, with two at the same
    instant (the id decides) and one without an instant (it comes last)."""
    user = await make_user(owner)
    made = {
        "V1Conversation": await make_v1_conversation(owner, user),
        "V2Conversation": await make_v2_conversation(owner, user),
    }
    for type_name, conversation in made.items():
        table = "chat_messages" if type_name == "V1Conversation" else "v2_messages"
        for i in range(12):
            await insert(
                owner, table, conversation_id=conversation, user_id=user, role="user",
                message=f"m{i}", conversation_turn=i + 1,
                created_at=None if i == 0 else at(min(i, 10)),  # m10 and m11: one instant
            )
    await owner.execute("ANALYZE chat_messages; ANALYZE v2_messages")
    return made


@pytest.mark.parametrize("type_name", ["V1Conversation", "V2Conversation"])
async def test_a_deep_page_of_messages_starts_at_its_cursor(
    client: httpx.AsyncClient, statements: StatementCounter, settings: Settings,
    owner: asyncpg.Connection, long_conversations: dict[str, uuid.UUID], type_name: str,
) -> None:
    """A conversation's messages paged 5 at a time: the pages put together are the whole
    list, the message without an instant last; after a cursor, the page is read from the
    cursor on in the conversation's index (its rows before the cursor are not a filter)."""
    headers = bearer(str(uuid.uuid4()), role="service_role")
    node_id = to_global_id(type_name, long_conversations[type_name])

    async def page(first: int, after: str | None) -> dict[str, Any]:
        response = await client.post(
            "/graphql",
            json={"query": MESSAGES, "variables": {"id": node_id, "first": first, "after": after}},
            headers=headers,
        )
        assert response.status_code == 200 and "errors" not in response.json(), response.text
        return response.json()["data"]["node"]["messages"]  # type: ignore[no-any-return]

    table = "chat_messages" if type_name == "V1Conversation" else "v2_messages"
    stored = await owner.fetch(
        f"SELECT message FROM {table} WHERE conversation_id = $1 ORDER BY created_at, id",
        long_conversations[type_name],
    )
    whole = [edge["node"] for edge in (await page(100, None))["edges"]]
    assert [n["text"] for n in whole] == [r["message"] for r in stored]
    assert len(whole) == 12 and whole[-1] == {"text": "m0", "createdAt": None}
    paged: list[dict[str, Any]] = []
    after = None
    while True:
        statements.reset()
        current = await page(5, after)
        if after is not None:
            (statement, args) = next(s for s in statements.read_statements() if "LATERAL" in s[0])
            plan = await plan_of(owner, Viewer.service(), settings, statement, args)
            # the index range starts at the cursor: the row itself where the index has the id
            # (v1), else its instant, the rows of that instant checked for the id (v2)
            assert re.search(r"Index Cond: .*(ROW\(created_at, id\) >|created_at >= )", plan), plan
            filters = [line for line in plan.splitlines() if "Filter:" in line]
            assert not [f for f in filters if "IS NULL" in f], plan
        paged += [edge["node"] for edge in current["edges"]]
        if not current["pageInfo"]["hasNextPage"]:
            break
        after = current["edges"][-1]["cursor"]
    assert paged == whole
