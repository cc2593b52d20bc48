"""The benchmark's bulk load (``bench.graph_data.load``) is all or nothing: it drops the
secondary indexes to load faster, and a load that fails must not leave them dropped (every
figure after it would measure sequential scans)."""

from __future__ import annotations

import asyncpg
import pytest

from bench.graph_data import Scale, load

SCALE = Scale(conversations=8, messages=2, events=20)
INDEXES = "SELECT schemaname, indexname, indexdef FROM pg_indexes ORDER BY 1, 2"


async def test_a_load_that_fails_leaves_the_database_as_it_was(
    owner: asyncpg.Connection,
) -> None:
    timings = await load(owner, SCALE)
    assert timings["v2_conversations"][0] == SCALE.conversations
    loaded = await owner.fetch(INDEXES)
    counts = await owner.fetchval("SELECT count(*) FROM v2_messages")
    assert any(r["indexname"] == "idx_v2_msg_conversation" for r in loaded)

    with pytest.raises(asyncpg.UniqueViolationError):
        await load(owner, SCALE)  # the same rows again

    assert await owner.fetch(INDEXES) == loaded
    assert await owner.fetchval("SELECT count(*) FROM v2_messages") == counts
    assert await owner.fetchval("SELECT current_setting('session_replication_role')") == "origin"
