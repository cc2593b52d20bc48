"""Parity verification (``gateway.store.verify`` and ``mwplu-gateway verify-migrations``)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from gateway.store.verify import VerificationReport
from gateway.tools.bulk import verify_migrations
from tests.conftest import Server
from tests.factories import insert
from tests.test_bulk import cli, owner_url, populate, run


async def report(server: Server, database: str) -> VerificationReport:
    return await verify_migrations(owner_url(server, database))


def found(result: VerificationReport) -> set[tuple[str, uuid.UUID | None]]:
    return {(p.kind, p.v1_conversation_id or p.v2_conversation_id) for p in result.problems}


async def test_clean_after_a_bulk_run(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    population = await populate(owner, 60, break_every=20)
    await run(server, database)
    # a message written natively in v2 after the migration is the copy's own life
    tracking = await owner.fetchrow(
        "SELECT * FROM migration_tracking WHERE v1_conversation_id = $1", population.good[0]
    )
    await insert(
        owner, "v2_messages", conversation_id=tracking["v2_conversation_id"],
        user_id=population.users[0], role="user", message="a new question, in v2",
    )
    await owner.execute(
        "UPDATE v2_conversations SET message_count = message_count + 1, last_message_at = "
        "(SELECT max(created_at) FROM v2_messages WHERE conversation_id = $1) WHERE id = $1",
        tracking["v2_conversation_id"],
    )

    result = await report(server, database)

    assert result.ok, result.problems
    assert result.statuses == {"pending": 0, "completed": 57, "failed": 3, "reverted": 0}
    assert result.checked == 57
    assert result.not_migrated == 3
    assert {p.v1_conversation_id for p in result.failed} == population.broken
    assert all("v2_messages_user_id_fkey" in p.detail for p in result.failed)
    ok = await asyncio.to_thread(cli, owner_url(server, database), "verify-migrations")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "parity: ok (57 completed migrations checked)" in ok.stdout


async def test_finds_corrupted_copies_drift_and_orphans(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    population = await populate(owner, 40, break_every=1000)
    await run(server, database)
    v2_of = {
        r["v1_conversation_id"]: r["v2_conversation_id"]
        for r in await owner.fetch("SELECT * FROM migration_tracking")
    }
    with_document = [
        c for c in population.conversations
        if await owner.fetchval("SELECT document_id FROM chat_conversations WHERE id = $1", c)
    ]
    plain = [c for c in population.conversations if c not in with_document]
    edited, shortened, drifted, unlinked, rerouted, recounted, deleted, recast = (
        plain[0], plain[1], plain[2], with_document[0], plain[3], plain[4], plain[5], plain[6]
    )

    async def v2_message(v1_id: uuid.UUID, position: int) -> uuid.UUID:
        return await owner.fetchval(  # type: ignore[no-any-return]
            "SELECT id FROM v2_messages WHERE conversation_id = $1 "
            "ORDER BY created_at, id OFFSET $2 LIMIT 1",
            v2_of[v1_id], position,
        )

    # a copy's text changed; a copy deleted (the last message: nothing replies to it)
    await owner.execute(
        "UPDATE v2_messages SET message = 'tampered' WHERE id = $1", await v2_message(edited, 0)
    )
    await owner.execute(
        "DELETE FROM v2_messages WHERE id = (SELECT id FROM v2_messages WHERE conversation_id = $1 "
        "ORDER BY created_at DESC, id DESC LIMIT 1)",
        v2_of[shortened],
    )
    # the v1 application wrote to a migrated conversation
    await insert(
        owner, "chat_messages", conversation_id=drifted, user_id=population.users[2],
        role="user", message="still writing to v1",
    )
    # the migration's document link removed, a reply target and a role rewritten
    await owner.execute(
        "DELETE FROM v2_conversation_documents WHERE conversation_id = $1", v2_of[unlinked]
    )
    await owner.execute(
        "UPDATE v2_messages SET reply_to_message_id = NULL WHERE id = $1",
        await v2_message(rerouted, 1),
    )
    await owner.execute(
        "UPDATE v2_messages SET role = 'system' WHERE id = $1", await v2_message(recast, 0)
    )
    # a stored count off, and a v1 original deleted
    await owner.execute(
        "UPDATE v2_conversations SET document_count = 7 WHERE id = $1", v2_of[recounted]
    )
    await owner.execute("DELETE FROM chat_conversations WHERE id = $1", deleted)

    result = await report(server, database)

    assert not result.ok
    assert found(result) == {
        ("text", edited),
        ("missing", shortened),
        ("message_count", shortened),
        ("stored_count", shortened),
        ("drift", drifted),
        ("document_link", unlinked),
        ("stored_count", unlinked),
        ("reply", rerouted),
        ("role", recast),
        ("stored_count", recounted),
        ("orphan", v2_of[deleted]),
    }
    assert [p.v1_conversation_id for p in result.drift] == [drifted]
    assert "still" not in result.drift[0].detail and "after the migration" in result.drift[0].detail
    assert [p.v2_conversation_id for p in result.orphans] == [v2_of[deleted]]
    assert {p.v1_conversation_id for p in result.count_mismatches} == {
        shortened, unlinked, recounted
    }
    text = result.of_kind("text")[0]
    assert "'v1 message 0'" in text.detail and "'tampered'" in text.detail
    assert result.of_kind("message_count")[0].messages == 1
    assert result.not_migrated == 0 and result.checked == 40

    failed = await asyncio.to_thread(
        cli, owner_url(server, database), "verify-migrations", "--limit", "100"
    )
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    assert failed.stderr.startswith("error: 11 parity problem(s) in 8 migrated conversation(s)")
    for kind in ("text", "missing", "drift", "orphan", "reply", "stored_count", "document_link"):
        assert kind in failed.stdout


async def test_finds_equal_timestamps_out_of_order(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    population = await populate(owner, 6, break_every=1000)
    tied = population.conversations[5]  # two messages share one created_at
    await run(server, database)
    assert (await report(server, database)).ok  # the bulk copy kept v1's order
    v2_id = await owner.fetchval(
        "SELECT v2_conversation_id FROM migration_tracking WHERE v1_conversation_id = $1", tied
    )
    v1_order = await owner.fetch(
        "SELECT role FROM chat_messages WHERE conversation_id = $1 "
        "AND message LIKE 'same instant%' ORDER BY created_at, id",
        tied,
    )
    # give the v2 copies ids that sort the other way round
    low, high = uuid.UUID(int=1), uuid.UUID(int=2**128 - 1)
    first, second = (r["role"] for r in v1_order)
    for role, new_id in ((first, high), (second, low)):
        await owner.execute(
            "UPDATE v2_messages SET id = $1 WHERE conversation_id = $2 AND role = $3 "
            "AND message LIKE 'same instant%'",
            new_id, v2_id, role,
        )

    result = await report(server, database)

    assert found(result) == {("order", tied)}
    assert result.of_kind("order")[0].messages == 2
