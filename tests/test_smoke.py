from __future__ import annotations

import asyncpg
import httpx

from tests.conftest import bearer
from tests.factories import make_user, make_v1_conversation, make_v2_conversation


async def test_smoke(owner: asyncpg.Connection, client: httpx.AsyncClient) -> None:
    user = await make_user(owner)
    await make_v1_conversation(owner, user, last=5, messages=3)
    await make_v2_conversation(owner, user, last=10, messages=2)
    r = await client.post(
        "/graphql",
        json={"query": "{ conversations { totalCount edges { node { id source title messageCount owner { fullName } messages(first: 2) { edges { node { text author { id } replyTo { id } } } } } } } }"},
        headers=bearer(str(user)),
    )
    print(r.json())
    assert r.status_code == 200
    assert "errors" not in r.json()
