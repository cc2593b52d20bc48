"""recordResearch and Query.researchHistory over HTTP (DESIGN §9): both stores, newest first,
the viewer's own."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests.factories import at, insert, make_city, make_document, make_user, make_v2_conversation
from tests.graphql import codes, gid, gql, ok

RECORD = """
mutation ($input: RecordResearchInput!) {
  recordResearch(input: $input) {
    entry { id source addressInput city { name }
      ... on V2ResearchEntry { success documents { title } conversation { id } } }
  }
}
"""
HISTORY = """
query ($first: Int, $after: String, $source: Source) {
  researchHistory(first: $first, after: $after, filter: {source: $source}) {
    edges { cursor node { source addressInput } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_recorded_research_joins_v1_history_newest_first(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    user, other = await make_user(owner), await make_user(owner, "Julien Bernard")
    city = await make_city(owner, "Nantes")
    for minutes, address in ((-30, "v1 ancienne"), (-10, "v1 récente")):
        await insert(owner, "research_history", user_id=user, address_input=address,
                     city_id=city, created_at=at(minutes))
    await insert(owner, "research_history", user_id=other, address_input="pas à moi")
    document = await make_document(owner, "PLU Nantes")
    conversation = await make_v2_conversation(owner, user)
    entry = ok(await gql(client, RECORD, {"input": {
        "addressInput": "3 rue Kervégan", "cityId": gid("City", city),
        "documentIds": [gid("Document", document)],
        "conversationId": gid("V2Conversation", conversation),
    }}, user=user))["recordResearch"]["entry"]
    assert entry["source"] == "V2" and entry["city"] == {"name": "Nantes"}
    assert entry["success"] is True and entry["documents"] == [{"title": "PLU Nantes"}]
    assert entry["conversation"] == {"id": gid("V2Conversation", conversation)}

    first = ok(await gql(client, HISTORY, {"first": 2}, user=user))["researchHistory"]
    assert [e["node"] for e in first["edges"]] == [
        {"source": "V2", "addressInput": "3 rue Kervégan"},
        {"source": "V1", "addressInput": "v1 récente"},
    ]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = ok(await gql(client, HISTORY, {"first": 2, "after": first["pageInfo"]["endCursor"]},
                        user=user))["researchHistory"]
    assert [e["node"]["addressInput"] for e in rest["edges"]] == ["v1 ancienne"]
    assert rest["pageInfo"]["hasNextPage"] is False
    v1_only = ok(await gql(client, HISTORY, {"source": "V1"}, user=user))["researchHistory"]
    assert {e["node"]["source"] for e in v1_only["edges"]} == {"V1"}
    anonymous = ok(await gql(client, HISTORY, {}))["researchHistory"]
    assert anonymous["edges"] == []


async def test_bad_research_input_writes_nothing(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    user, other = await make_user(owner), await make_user(owner, "Julien Bernard")
    theirs = await make_v2_conversation(owner, other)
    cases = [
        ({"addressInput": " "}, "BAD_USER_INPUT"),
        ({"addressInput": "x", "cityId": gid("Zone", uuid.uuid4())}, "BAD_USER_INPUT"),
        ({"addressInput": "x", "cityId": gid("City", uuid.uuid4())}, "BAD_USER_INPUT"),
        ({"addressInput": "x", "geoLat": "95"}, "BAD_USER_INPUT"),
        ({"addressInput": "x", "conversationId": gid("V2Conversation", theirs)}, "NOT_FOUND"),
    ]
    for given, code in cases:
        assert codes(await gql(client, RECORD, {"input": given}, user=user)) == [code]
    assert codes(await gql(client, RECORD, {"input": {"addressInput": "x"}})) == [
        "UNAUTHENTICATED"]
    assert await owner.fetchval("SELECT count(*) FROM v2_research_history") == 0
