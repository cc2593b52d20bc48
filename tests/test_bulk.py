"""Bulk migration (``gateway.tools.bulk``, ``mwplu-gateway migrate-conversations``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError

from gateway.db import Db, create_engine
from gateway.settings import Settings
from gateway.store import migration as store
from gateway.tools.bulk import BulkSummary, migrate_conversations
from tests.conftest import Server, render
from tests.factories import at, insert, make_document, make_user, make_v1_conversation

REPO = Path(__file__).resolve().parent.parent

V1_MESSAGES = """
SELECT id, user_id, role, message, conversation_turn, reply_to_message_id, metadata,
       created_at, document_id
FROM chat_messages WHERE conversation_id = $1 ORDER BY created_at, id
"""
V2_MESSAGES = """
SELECT id, user_id, role, message, conversation_turn, reply_to_message_id, metadata,
       created_at, referenced_documents
FROM v2_messages WHERE conversation_id = $1 ORDER BY created_at, id
"""


@dataclass
class Population:
    users: list[uuid.UUID]
    conversations: list[uuid.UUID]
    broken: set[uuid.UUID] = field(default_factory=set)
    ghosts: list[uuid.UUID] = field(default_factory=list)  # message authors with no auth.users row
    messages: dict[uuid.UUID, int] = field(default_factory=dict)

    @property
    def good(self) -> list[uuid.UUID]:
        return [c for c in self.conversations if c not in self.broken]


async def populate(conn: asyncpg.Connection, n: int = 200, *, break_every: int = 25) -> Population:
    """``n`` v1 conversations of 2 to 6 messages: reply chains, documents, three roles, metadata,
    equal timestamps in some; every ``break_every``-th one gets a message whose author has no
    ``auth.users`` row (v1 has no foreign key there, v2 has: its copy must fail)."""
    users = [await make_user(conn, f"User {i}") for i in range(5)]
    documents = [await make_document(conn, f"Règlement {code}") for code in ("UA", "UB")]
    population = Population(users=users, conversations=[])
    for i in range(n):
        user = users[i % len(users)]
        document = documents[i % 2] if i % 3 == 0 else None
        count = 2 + i % 5
        cid = await make_v1_conversation(
            conn, user, messages=count, document_id=document, last=i, is_active=i % 7 != 0
        )
        if i % 4 == 0:  # a system message, replying to the first one, with metadata
            first = await conn.fetchval(
                "SELECT id FROM chat_messages WHERE conversation_id = $1 "
                "ORDER BY created_at LIMIT 1",
                cid,
            )
            await insert(
                conn, "chat_messages", conversation_id=cid, user_id=user, role="system",
                message=f"system note {i} — é", conversation_turn=99, reply_to_message_id=first,
                metadata={"model": "gpt-4o", "tokens": i}, created_at=at(-800),
            )
            count += 1
        if i % 10 == 5:  # two messages with the same timestamp
            for role in ("user", "assistant"):
                await insert(
                    conn, "chat_messages", conversation_id=cid, user_id=user, role=role,
                    message=f"same instant {role} {i}", created_at=at(-700),
                )
            count += 2
        if i % break_every == break_every - 1:
            ghost = uuid.uuid4()
            await insert(
                conn, "chat_messages", conversation_id=cid, user_id=ghost, role="user",
                message="written by a user who no longer exists", created_at=at(-600),
            )
            population.broken.add(cid)
            population.ghosts.append(ghost)
            count += 1
        population.conversations.append(cid)
        population.messages[cid] = count
    return population


def owner_url(server: Server, database: str) -> str:
    return render(server.database_url(database))


async def run(server: Server, database: str, **overrides: object) -> BulkSummary:
    options: dict[str, object] = {
        "user_id": None, "before": None, "batch_size": 16, "concurrency": 3,
        "dry_run": False, "progress": None,
    }
    options.update(overrides)
    return await migrate_conversations(owner_url(server, database), **options)  # type: ignore[arg-type]


async def assert_copy_matches(conn: asyncpg.Connection, v1_id: uuid.UUID) -> None:
    """The v2 copy of ``v1_id`` equals it field by field, reply chain remapped."""
    tracking = await conn.fetchrow(
        "SELECT * FROM migration_tracking WHERE v1_conversation_id = $1", v1_id
    )
    assert tracking["migration_status"] == "completed"
    v1 = await conn.fetchrow("SELECT * FROM chat_conversations WHERE id = $1", v1_id)
    v2 = await conn.fetchrow(
        "SELECT * FROM v2_conversations WHERE id = $1", tracking["v2_conversation_id"]
    )
    project = await conn.fetchrow(
        "SELECT * FROM v2_projects WHERE id = $1", tracking["v2_project_id"]
    )
    old = await conn.fetch(V1_MESSAGES, v1_id)
    new = await conn.fetch(V2_MESSAGES, v2["id"])
    assert len(new) == len(old) == v2["message_count"]
    assert v2["project_id"] == project["id"]
    assert project["user_id"] == v2["user_id"] == v1["user_id"]
    assert project["status"] == "draft"
    assert project["metadata"] == (
        f'{{"migration_id": "{tracking["id"]}", "migrated_from_v1": true}}'
    )
    assert v2["is_active"] == v1["is_active"]
    assert v2["created_at"] == v1["created_at"]
    assert v2["last_message_at"] == max(m["created_at"] for m in old)
    assert v2["conversation_type"] == "address_analysis"
    document_title = await conn.fetchval(
        "SELECT title FROM documents WHERE id = $1", v1["document_id"]
    )
    first_user = next(m["message"] for m in old if m["role"] == "user")
    assert v2["title"] == (document_title or first_user[:80])
    links = await conn.fetch(
        "SELECT document_id, added_by FROM v2_conversation_documents WHERE conversation_id = $1",
        v2["id"],
    )
    expected_links = [(v1["document_id"], "migration")] if v1["document_id"] else []
    assert [(r["document_id"], r["added_by"]) for r in links] == expected_links
    assert v2["document_count"] == len(expected_links)
    position = {m["id"]: i for i, m in enumerate(old)}
    new_position = {m["id"]: i for i, m in enumerate(new)}
    for a, b in zip(old, new, strict=True):
        assert (b["role"], b["message"], b["conversation_turn"], b["created_at"], b["user_id"]) == (
            a["role"], a["message"], a["conversation_turn"], a["created_at"], a["user_id"]
        )
        import json

        assert json.loads(b["metadata"]) == {
            **json.loads(a["metadata"] or "{}"), "migrated_from_v1": True
        }
        assert b["referenced_documents"] == ([a["document_id"]] if a["document_id"] else [])
        if a["reply_to_message_id"] is None:
            assert b["reply_to_message_id"] is None
        else:  # the copy replies to the copy of the original's target
            assert new_position[b["reply_to_message_id"]] == position[a["reply_to_message_id"]]


async def test_bulk_run_records_failures_migrates_the_rest_and_resumes(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    # v1 messages' user_id has no foreign key (so a ghost author can exist); v2's has one
    foreign_keys = """
        SELECT count(*) FROM pg_constraint k JOIN pg_attribute a
          ON a.attrelid = k.conrelid AND a.attnum = ANY(k.conkey)
        WHERE k.contype = 'f' AND k.conrelid = CAST($1 AS regclass) AND a.attname = 'user_id'
    """
    assert await owner.fetchval(foreign_keys, "chat_messages") == 0
    assert await owner.fetchval(foreign_keys, "v2_messages") == 1
    population = await populate(owner, 200)
    assert len(population.broken) == 8
    seen: list[tuple[int, int]] = []

    summary = await run(server, database, progress=lambda done, total: seen.append((done, total)))

    assert (summary.selected, summary.migrated, summary.skipped, summary.failed) == (200, 192, 0, 8)
    assert summary.messages == sum(population.messages[c] for c in population.good)
    assert summary.batches == 13 and 1 <= summary.batches_retried <= 8
    assert {f.v1_conversation_id for f in summary.failures} == population.broken
    assert seen[0] == (0, 200) and seen[-1] == (200, 200)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    # failed ones are recorded with the database's reason, and left nothing in v2
    failed = await owner.fetch(
        "SELECT v1_conversation_id, error_message, v2_conversation_id FROM migration_tracking "
        "WHERE migration_status = 'failed'"
    )
    assert {r["v1_conversation_id"] for r in failed} == population.broken
    for row in failed:
        assert row["v2_conversation_id"] is None
        assert "v2_messages_user_id_fkey" in row["error_message"]
        assert "SQLSTATE 23503" in row["error_message"]
    assert await owner.fetchval("SELECT count(*) FROM v2_conversations") == 192
    assert await owner.fetchval("SELECT count(*) FROM v2_projects") == 192
    assert await owner.fetchval("SELECT count(*) FROM v2_messages") == summary.messages
    assert await owner.fetchval(
        "SELECT count(*) FROM migration_tracking WHERE migration_status = 'completed'"
    ) == 192
    for v1_id in population.good:
        await assert_copy_matches(owner, v1_id)

    # a second run resumes: only the failed ones are selected, nothing is copied twice
    again = await run(server, database)
    assert (again.selected, again.migrated, again.failed, again.already_completed) == (8, 0, 8, 192)
    assert await owner.fetchval("SELECT count(*) FROM v2_conversations") == 192

    # once the cause is fixed, a third run completes them, still without duplicates
    for ghost in population.ghosts:
        await insert(owner, "auth.users", id=ghost, email=f"{ghost.hex}@example.fr")
    third = await run(server, database)
    assert (third.selected, third.migrated, third.failed) == (8, 8, 0)
    assert await owner.fetchval("SELECT count(*) FROM v2_conversations") == 200
    assert await owner.fetchval(
        "SELECT count(*) FROM migration_tracking WHERE migration_status = 'completed' "
        "AND error_message IS NULL"
    ) == 200
    for v1_id in population.broken:
        await assert_copy_matches(owner, v1_id)
    nothing = await run(server, database)
    assert (nothing.selected, nothing.migrated, nothing.already_completed) == (0, 0, 200)


async def test_a_bulk_copy_is_revertible_and_migrates_again(
    server: Server, database: str, owner: asyncpg.Connection, settings: Settings
) -> None:
    population = await populate(owner, 6, break_every=1000)
    await run(server, database, batch_size=10)
    v1_id = population.conversations[0]
    engine = create_engine(owner_url(server, database), settings, pool_size=1)
    try:
        async with engine.connect() as conn, conn.begin():
            db = Db(conn)
            tracking = await store.lock_for_revert(db, v1_id=v1_id, v2_id=None)
            assert tracking is not None
            await store.revert(db, tracking)
    finally:
        await engine.dispose()
    assert await owner.fetchval("SELECT count(*) FROM v2_projects") == 5
    assert await owner.fetchval("SELECT count(*) FROM v2_conversations") == 5
    again = await run(server, database)
    assert (again.selected, again.migrated) == (1, 1)
    tracking = await owner.fetchrow(
        "SELECT * FROM migration_tracking WHERE v1_conversation_id = $1", v1_id
    )
    assert tracking["migration_status"] == "completed" and tracking["reverted_at"] is None
    await assert_copy_matches(owner, v1_id)


async def test_concurrent_runs_copy_each_conversation_once(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    population = await populate(owner, 120, break_every=30)
    first, second = await asyncio.gather(
        run(server, database, batch_size=7, concurrency=2),
        run(server, database, batch_size=11, concurrency=3),
    )
    assert first.migrated + second.migrated == len(population.good)
    assert await owner.fetchval("SELECT count(*) FROM v2_conversations") == len(population.good)
    assert await owner.fetchval(
        "SELECT count(*) FROM migration_tracking WHERE migration_status = 'completed'"
    ) == len(population.good)
    assert await owner.fetchval(
        "SELECT count(*) FROM migration_tracking WHERE migration_status = 'failed'"
    ) == len(population.broken)


async def test_dry_run_writes_nothing(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    population = await populate(owner, 40)
    summary = await run(server, database, dry_run=True)
    assert summary.dry_run
    assert (summary.selected, summary.migrated, summary.failed) == (40, 0, 0)
    assert summary.messages == sum(population.messages.values())
    for table in ("migration_tracking", "v2_projects", "v2_conversations", "v2_messages"):
        assert await owner.fetchval(f"SELECT count(*) FROM {table}") == 0


async def test_user_and_date_filters(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    population = await populate(owner, 20, break_every=1000)
    old = await make_v1_conversation(owner, population.users[0], messages=2)
    await owner.execute(
        "UPDATE chat_conversations SET created_at = '2020-01-01T23:00:00Z' WHERE id = $1", old
    )
    before = await run(server, database, before=date(2020, 1, 2))
    assert (before.selected, before.migrated) == (1, 1)
    mine = await run(server, database, user_id=population.users[1])
    assert (mine.selected, mine.migrated, mine.already_completed) == (4, 4, 0)
    owners = await owner.fetch("SELECT DISTINCT user_id FROM v2_conversations")
    assert {r["user_id"] for r in owners} == {population.users[0], population.users[1]}


async def test_an_interrupted_run_leaves_no_partial_copy_and_a_rerun_completes(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    population = await populate(owner, 80, break_every=1000)
    kills: list[asyncio.Task[object]] = []
    one_at_a_time = asyncio.Lock()

    async def terminate_the_others() -> object:
        async with one_at_a_time:
            return await owner.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )

    def progress(done: int, total: int) -> None:
        if 0 < done < total and len(kills) < 3:
            kills.append(asyncio.get_running_loop().create_task(terminate_the_others()))

    try:
        await run(server, database, batch_size=5, concurrency=2, progress=progress)
    except (DBAPIError, OSError):  # the run stops when its connections are cut
        pass
    await asyncio.gather(*kills)
    # whatever was cut, nothing is half-copied
    assert await owner.fetchval(
        "SELECT count(*) FROM migration_tracking WHERE migration_status <> 'completed'"
    ) == 0
    copies = await owner.fetchval("SELECT count(*) FROM v2_conversations")
    assert copies == await owner.fetchval("SELECT count(*) FROM migration_tracking")

    rerun = await run(server, database)
    assert rerun.failed == 0 and rerun.migrated == 80 - copies
    assert await owner.fetchval("SELECT count(*) FROM v2_conversations") == 80
    for v1_id in population.conversations:
        await assert_copy_matches(owner, v1_id)


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m gateway.tools.cli`` with ``DATABASE_URL=url`` (the owner's, as operators do)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "DATABASE_URL": url,
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway.tools.cli", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )


async def test_cli_exits_1_when_a_conversation_failed(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    population = await populate(owner, 30, break_every=10)
    url = owner_url(server, database)
    dry = await asyncio.to_thread(cli, url, "migrate-conversations", "--all", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "30" in dry.stdout and await owner.fetchval("SELECT count(*) FROM v2_conversations") == 0

    result = await asyncio.to_thread(
        cli, url, "migrate-conversations", "--all", "--batch-size", "8"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: 3 conversation")
    assert "migrated" in result.stdout and "27" in result.stdout
    assert await owner.fetchval("SELECT count(*) FROM v2_conversations") == 27

    for ghost in population.ghosts:
        await insert(owner, "auth.users", id=ghost, email=f"{ghost.hex}@example.fr")
    fixed = await asyncio.to_thread(cli, url, "migrate-conversations", "--all")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert await owner.fetchval("SELECT count(*) FROM v2_conversations") == 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "one of --all or --user"),
        (["--all", "--user", str(uuid.UUID(int=1))], "not both"),
        (["--user", "nobody"], "--user must be a UUID"),
    ],
)
def test_cli_rejects_a_missing_or_ambiguous_scope(args: list[str], message: str) -> None:
    # checked before any connection: the URL names no server
    result = cli("postgresql://nobody@127.0.0.1:1/none", "migrate-conversations", *args)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert message in result.stderr, result.stderr
