from __future__ import annotations

import uuid

import asyncpg
import pytest

from gateway.tools.demo import demo_loaded, seed_demo
from gateway.tools.demo_content import COLUMNS, DEMO_ADMIN_ID, DEMO_OTHER_USER_ID, DEMO_USER_ID
from tests.conftest import Server, create_database, drop_database, render

LIVE_COUNTERS = """
SELECT count(*) FROM v2_conversations c WHERE
  c.message_count <> (SELECT count(*) FROM v2_messages m WHERE m.conversation_id = c.id)
  OR c.document_count <>
     (SELECT count(*) FROM v2_conversation_documents d WHERE d.conversation_id = c.id)
  OR c.last_message_at IS DISTINCT FROM
     (SELECT max(created_at) FROM v2_messages m WHERE m.conversation_id = c.id)
"""
V1_BOUNDS = """
SELECT count(*) FROM chat_conversations c WHERE
  c.last_message_at IS DISTINCT FROM
    (SELECT max(created_at) FROM chat_messages m WHERE m.conversation_id = c.id)
  OR c.created_at IS DISTINCT FROM
    (SELECT min(created_at) FROM chat_messages m WHERE m.conversation_id = c.id)
"""
FOREIGN_REPLIES = """
SELECT count(*) FROM {table} m JOIN {table} r ON r.id = m.reply_to_message_id
WHERE r.conversation_id <> m.conversation_id OR r.created_at >= m.created_at
"""
EVENTS = """
SELECT (SELECT count(*) FROM chat_messages WHERE role = 'assistant'),
       (SELECT count(*) FROM v2_messages WHERE role = 'assistant'),
       count(*) FILTER (WHERE metadata->>'source' = 'v1'),
       count(*) FILTER (WHERE metadata->>'source' = 'v2')
FROM analytics.chat_events
"""
OWNED = """
SELECT (SELECT count(*) FROM chat_conversations WHERE user_id = $1 AND document_id IS NULL),
       (SELECT count(*) FROM chat_conversations WHERE user_id = $1 AND document_id IS NOT NULL),
       (SELECT count(*) FROM v2_projects WHERE user_id = $1),
       (SELECT count(*) FROM v2_conversations WHERE user_id = $1)
"""
LISTING = """
SELECT string_agg(source, '' ORDER BY last_message_at DESC) FROM (
  SELECT 'a' AS source, last_message_at FROM chat_conversations WHERE user_id = $1
  UNION ALL SELECT 'b', last_message_at FROM v2_conversations WHERE user_id = $1) x
"""
HASH = "SELECT md5(string_agg(t::text, '' ORDER BY id)) FROM {table} t"


def url_of(server: Server, database: str) -> str:
    return render(server.database_url(database))


async def test_seed_reports_counts_and_refuses_a_second_load(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    url = url_of(server, database)
    seen: list[tuple[str, int]] = []
    assert not await demo_loaded(url)
    summary = await seed_demo(url, progress=lambda table, rows: seen.append((table, rows)))
    assert [table for table, _ in seen] == list(COLUMNS)
    assert dict(seen) == summary.counts
    assert await owner.fetchval("SELECT count(*) FROM chat_messages") == summary.counts[
        "chat_messages"
    ]
    assert summary.counts["chat_conversations"] == 60
    assert summary.counts["v2_conversations"] == 60
    assert 900 <= summary.counts["chat_messages"] + summary.counts["v2_messages"] <= 1200
    assert await demo_loaded(url)
    with pytest.raises(RuntimeError, match="already loaded"):
        await seed_demo(url)


async def test_seeded_rows_are_consistent(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    await seed_demo(url_of(server, database))
    assert await owner.fetchval(LIVE_COUNTERS) == 0
    assert await owner.fetchval(V1_BOUNDS) == 0
    for table in ("chat_messages", "v2_messages"):
        assert await owner.fetchval(FOREIGN_REPLIES.format(table=table)) == 0
    v1_answers, v2_answers, v1_events, v2_events = await owner.fetchrow(EVENTS)
    assert (v1_events, v2_events) == (v1_answers, v2_answers)
    admin = await owner.fetchval("SELECT is_admin FROM profiles WHERE id = $1",
                                 uuid.UUID(DEMO_ADMIN_ID))
    assert admin is True


async def test_the_demo_routes_new_conversations_both_ways(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    await seed_demo(url_of(server, database))
    routes = {
        user: await owner.fetchval(
            "SELECT evaluate_feature_flag('v2_conversations', $1, NULL)", uuid.UUID(user)
        )
        for user in (DEMO_USER_ID, DEMO_OTHER_USER_ID)
    }
    assert routes == {DEMO_USER_ID: True, DEMO_OTHER_USER_ID: False}


@pytest.mark.parametrize("user_id", [DEMO_USER_ID, DEMO_OTHER_USER_ID])
async def test_demo_users_own_both_stores_interleaved(
    server: Server, database: str, owner: asyncpg.Connection, user_id: str
) -> None:
    await seed_demo(url_of(server, database))
    plain, with_document, projects, conversations = await owner.fetchrow(
        OWNED, uuid.UUID(user_id)
    )
    assert plain >= 1 and with_document >= 1
    assert projects >= 2 and conversations >= 3
    listing = await owner.fetchval(LISTING, uuid.UUID(user_id))
    assert "ab" in listing and "ba" in listing


async def test_two_loads_are_identical(server: Server, database: str, template: str) -> None:
    other = await create_database(server, template)
    try:
        hashes = []
        for name in (database, other):
            await seed_demo(url_of(server, name))
            conn = await server.connect(name)
            try:
                tables = ("chat_messages", "v2_messages", "v2_conversations")
                hashes.append([await conn.fetchval(HASH.format(table=t)) for t in tables])
            finally:
                await conn.close()
        assert hashes[0] == hashes[1]
    finally:
        await drop_database(server, other)


async def test_sizes_grow_with_scale(server: Server, database: str) -> None:
    summary = await seed_demo(url_of(server, database), scale=3)
    assert summary.counts["profiles"] == 3 + 60
    assert summary.counts["chat_conversations"] == 180
    assert summary.counts["v2_conversations"] == 180
    assert summary.counts["cities"] == 20
