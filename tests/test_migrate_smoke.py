from __future__ import annotations

import asyncpg
import httpx

from schema.ids import to_global_id
from tests.conftest import bearer
from tests.factories import make_document, make_user, make_v1_conversation

MIGRATE = """
mutation($id: ID!) { migrateConversation(input: {conversationId: $id}) {
  alreadyMigrated migration { status } conversation { id messageCount documentCount
  messages(first: 10) { edges { node { text replyTo { id } } } } } project { status } } }
"""
REVERT = """
mutation($id: ID!) { revertMigration(input: {conversationId: $id}) {
  migration { status revertedAt } v1Conversation { id } } }
"""


async def test_migrate_and_revert(owner: asyncpg.Connection, client: httpx.AsyncClient) -> None:
    user = await make_user(owner)
    doc = await make_document(owner)
    v1 = await make_v1_conversation(owner, user, messages=3, document_id=doc)
    gid = to_global_id("V1Conversation", v1)
    r = await client.post("/graphql", json={"query": MIGRATE, "variables": {"id": gid}}, headers=bearer(str(user)))
    print(r.json())
    body = r.json()
    assert "errors" not in body
    assert body["data"]["migrateConversation"]["alreadyMigrated"] is False
    r = await client.post("/graphql", json={"query": MIGRATE, "variables": {"id": gid}}, headers=bearer(str(user)))
    assert r.json()["data"]["migrateConversation"]["alreadyMigrated"] is True
    r = await client.post("/graphql", json={"query": REVERT, "variables": {"id": gid}}, headers=bearer(str(user)))
    print(r.json())
    assert r.json()["data"]["revertMigration"]["migration"]["status"] == "REVERTED"
