"""migrateConversation under faults, against a real PostgreSQL over real HTTP.

1. A client that hangs up at a random moment (0-50 ms) while its migration runs, under uvicorn.
2. PostgreSQL itself killed (``kill -9`` of the postmaster) during a batch of concurrent
   migrations, then restarted under the same gateway (same app, same engine).

After either fault every migration is all-or-nothing, no transaction is left open (in the
database or in the pool), and the gateway goes on serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import create_engine, in_use, migrate, release_idle
from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.tools.embedded import EmbeddedPostgres
from resolvers.ids import to_global_id
from tests.conftest import JWT_SECRET, bearer, render
from tests.factories import at, make_document, make_user
from tests.serving import served

MIGRATE = """
mutation Migrate($id: ID!) {
  migrateConversation(input: {conversationId: $id}) {
    alreadyMigrated
    migration { status }
    conversation { databaseId messageCount }
  }
}
"""
SERVING = "{ conversations(first: 1) { totalCount } }"

# Every way a migration could be left half done, as (problem, v1 id, detail) rows. The owner
# connection bypasses RLS, so this sees every row.
PARTIAL = """
SELECT 'tracking row not completed' AS problem, t.v1_conversation_id AS v1,
       t.migration_status AS detail
FROM migration_tracking t WHERE t.migration_status <> 'completed'
UNION ALL
SELECT 'completed row without its copy', t.v1_conversation_id, t.v2_conversation_id::text
FROM migration_tracking t
WHERE t.migration_status = 'completed'
  AND NOT EXISTS (SELECT 1 FROM v2_conversations c WHERE c.id = t.v2_conversation_id)
UNION ALL
SELECT 'message count mismatch', t.v1_conversation_id,
       format('v1 %s, v2 %s, message_count %s', v1.n, v2.n, c.message_count)
FROM migration_tracking t
JOIN v2_conversations c ON c.id = t.v2_conversation_id
CROSS JOIN LATERAL (SELECT count(*) AS n FROM chat_messages m
                    WHERE m.conversation_id = t.v1_conversation_id) v1
CROSS JOIN LATERAL (SELECT count(*) AS n FROM v2_messages m WHERE m.conversation_id = c.id) v2
WHERE NOT (v1.n = v2.n AND v2.n = c.message_count)
UNION ALL
SELECT 'v2 copy without a completed tracking row', NULL, c.id::text
FROM v2_conversations c
WHERE NOT EXISTS (SELECT 1 FROM migration_tracking t
                  WHERE t.v2_conversation_id = c.id AND t.migration_status = 'completed')
UNION ALL
SELECT 'project without a conversation', NULL, p.id::text
FROM v2_projects p WHERE NOT EXISTS (SELECT 1 FROM v2_conversations c WHERE c.project_id = p.id)
UNION ALL
SELECT 'document link count mismatch', t.v1_conversation_id, count(l.document_id)::text
FROM migration_tracking t
JOIN chat_conversations v ON v.id = t.v1_conversation_id
LEFT JOIN v2_conversation_documents l ON l.conversation_id = t.v2_conversation_id
WHERE t.migration_status = 'completed'
GROUP BY t.v1_conversation_id, v.document_id
HAVING count(l.document_id) <> (v.document_id IS NOT NULL)::int
"""
COMPLETED = "SELECT v1_conversation_id FROM migration_tracking WHERE migration_status = 'completed'"
OPEN_TRANSACTIONS = """
SELECT pid, usename, state, left(query, 120) AS query FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND state LIKE 'idle in transaction%'
"""


async def none_left_open(conn: asyncpg.Connection) -> bool:
    """No session idle in a transaction that wrote; none at all beyond a query's deferred
    COMMIT (a read-only transaction, ended within ``END_AFTER_S``: gateway.db.kept)."""
    if await conn.fetch(OPEN_TRANSACTIONS + " AND backend_xid IS NOT NULL"):
        return False

    async def none_open() -> bool:
        return not await conn.fetch(OPEN_TRANSACTIONS)

    return await eventually(none_open, within=2)
BUSY = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename = 'authenticator'
  AND state IS DISTINCT FROM 'idle'
"""

Conversation = tuple[uuid.UUID, uuid.UUID]  # (owner, v1 conversation)


# --- arranging -----------------------------------------------------------------------------


async def arrange(
    conn: asyncpg.Connection, *, users: int, conversations: int, messages: int
) -> list[Conversation]:
    """v1 conversations (each with a document) of ``messages`` to ``messages + 6`` messages, each
    replying to the previous one, bulk-inserted with COPY."""
    owners = [await make_user(conn, f"Fault Owner {i}") for i in range(users)]
    document = await make_document(conn)
    made: list[Conversation] = []
    rows: list[tuple[Any, ...]] = []
    lines: list[tuple[Any, ...]] = []
    filler = "Quelle est la hauteur maximale autorisée en zone UB ? " * 3
    for n in range(conversations):
        user, cid = owners[n % users], uuid.uuid4()
        made.append((user, cid))
        rows.append((cid, user, document, True, at(n), at(-1000)))
        previous = None
        for i in range(messages + n % 7):  # counts differ, so a mix-up between copies shows
            mid = uuid.uuid4()
            lines.append((
                mid, cid, user, "user" if i % 2 == 0 else "assistant", f"{i}: {filler}",
                document if i == 1 else None, i // 2 + 1, previous,
                f'{{"tokens": {i}}}' if i % 5 == 0 else None, at(-900 + i),
            ))
            previous = mid
    await conn.copy_records_to_table(
        "chat_conversations",
        records=rows,
        columns=["id", "user_id", "document_id", "is_active", "last_message_at", "created_at"],
    )
    await conn.copy_records_to_table(
        "chat_messages",
        records=lines,
        columns=["id", "conversation_id", "user_id", "role", "message", "document_id",
                 "conversation_turn", "reply_to_message_id", "metadata", "created_at"],
    )
    return made


# --- checking ------------------------------------------------------------------------------


async def partial_migrations(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in await conn.fetch(PARTIAL)]


async def completed(conn: asyncpg.Connection) -> set[uuid.UUID]:
    return {row[0] for row in await conn.fetch(COMPLETED)}


async def eventually(check: Callable[[], Awaitable[bool]], within: float) -> bool:
    """Whether ``check`` comes true within ``within`` seconds (polled every 50 ms)."""
    deadline = time.monotonic() + within
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


async def assert_pool_clean(engine: AsyncEngine, rounds: int = 3) -> None:
    """No pooled connection carries an open transaction: hold every connection the pool may
    hand out at once, and ask each (driver and server) whether a transaction is open (the
    connections kept between requests first go back to the pool)."""
    assert in_use(engine) == 0
    await release_idle(engine)
    assert engine.pool.checkedout() == 0
    size = engine.pool.size()  # type: ignore[attr-defined]
    for _ in range(rounds):
        conns = [await engine.connect() for _ in range(size)]
        try:
            for conn in conns:
                assert not conn.in_transaction()
                raw = await conn.get_raw_connection()
                assert not raw.driver_connection.is_in_transaction()  # type: ignore[union-attr]
                async with conn.begin():
                    assert await conn.scalar(text("SELECT txid_current_if_assigned()")) is None
                    assert await conn.scalar(text("SELECT 1")) == 1
        finally:
            for conn in conns:
                await conn.close()
    assert engine.pool.checkedout() == 0


def migrate_body(v1: uuid.UUID) -> bytes:
    return orjson.dumps(
        {"query": MIGRATE, "variables": {"id": to_global_id("V1Conversation", v1)}}
    )


async def migrate_call(client: httpx.AsyncClient, user: uuid.UUID, v1: uuid.UUID) -> httpx.Response:
    return await client.post(
        "/graphql",
        content=migrate_body(v1),
        headers={**bearer(str(user)), "content-type": "application/json"},
    )


def failure(response: Any) -> str:
    """How a call failed, for the test's summary line."""
    if not isinstance(response, httpx.Response):
        return type(response).__name__
    try:
        errors = response.json().get("errors") or [{}]
    except ValueError:
        return str(response.status_code)
    return f"{response.status_code} {errors[0].get('extensions', {}).get('code')}"


def succeeded(response: Any) -> dict[str, Any] | None:
    """The migrateConversation payload of a successful call, else None."""
    if not isinstance(response, httpx.Response) or response.status_code != 200:
        return None
    body = response.json()
    if body.get("errors") or not body.get("data"):
        return None
    return body["data"]["migrateConversation"]  # type: ignore[no-any-return]


async def migrate_rest(
    client: httpx.AsyncClient, conversations: list[Conversation], done: set[uuid.UUID]
) -> None:
    """Migrate every conversation again: those already completed answer alreadyMigrated."""
    for user, v1 in conversations:
        response = await migrate_call(client, user, v1)
        assert response.status_code == 200, response.text
        payload = succeeded(response)
        assert payload is not None, response.text
        assert payload["alreadyMigrated"] is (v1 in done), (v1, payload)
        assert payload["migration"]["status"] == "COMPLETED"


# --- 1. the client hangs up ----------------------------------------------------------------


async def hang_up(port: int, user: uuid.UUID, v1: uuid.UUID, delay: float, *, reset: bool) -> bool:
    """Send a complete migrateConversation POST, wait up to ``delay`` seconds and close the
    socket (with a FIN, or a RST when ``reset``); whether the answer had begun to arrive."""
    body = migrate_body(v1)
    head = (
        f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: {bearer(str(user))['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + body)
    await writer.drain()
    try:  # wait ``delay`` seconds, noting whether the answer came first
        answered = bool(await asyncio.wait_for(reader.read(1), delay))
    except TimeoutError:
        answered = False
    if reset:
        # SO_LINGER 0: close() sends a RST instead of a FIN.
        writer.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        writer.transport.abort()
    else:
        writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return answered


async def test_client_disconnect_during_migration_is_all_or_nothing(
    owner: asyncpg.Connection, engine: AsyncEngine, settings: Settings
) -> None:
    # given 30 v1 conversations of 300+ messages (a migration takes milliseconds)
    conversations = await arrange(owner, users=3, conversations=30, messages=300)
    app = create_app(settings, engine=engine)
    rng = random.Random()
    started = time.monotonic()
    async with served(app, lifespan="on") as port:
        # when each conversation's migration is abandoned 0-50 ms after it was sent
        early = 0
        for n, (user, v1) in enumerate(conversations):
            answered = await hang_up(port, user, v1, rng.uniform(0, 0.05), reset=n % 2 == 1)
            early += not answered

        # then, once the gateway is done with the abandoned requests …
        async def quiet() -> bool:
            return bool(in_use(engine) == 0 and await owner.fetchval(BUSY) == 0)

        assert await eventually(quiet, within=10), await owner.fetch(
            "SELECT usename, state, query FROM pg_stat_activity WHERE datname = current_database()"
        )
        # … every trial is all-or-nothing
        assert await partial_migrations(owner) == []
        done = await completed(owner)
        migrated = await owner.fetchval("SELECT count(*) FROM v2_conversations")
        assert migrated == len(done)
        # no session is left idle in transaction a few seconds later
        await asyncio.sleep(1)

        async def no_open_transaction() -> bool:
            return not await owner.fetch(OPEN_TRANSACTIONS)

        assert await eventually(no_open_transaction, within=5), await owner.fetch(
            OPEN_TRANSACTIONS
        )
        # no pooled connection carries an open transaction
        await assert_pool_clean(engine)

        # and a normal call then migrates each conversation (or returns the existing copy)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            await migrate_rest(client, conversations, done)
    assert await partial_migrations(owner) == []
    assert await completed(owner) == {v1 for _, v1 in conversations}
    assert await none_left_open(owner), await owner.fetch(OPEN_TRANSACTIONS)
    await assert_pool_clean(engine)
    print(
        f"\nclient disconnects: {early}/{len(conversations)} hung up before the answer; "
        f"{len(done)} abandoned migrations had committed, the rest left nothing; "
        f"{time.monotonic() - started:.1f} s"
    )


# --- 2. PostgreSQL is killed ---------------------------------------------------------------


def postmaster_pid(embedded: EmbeddedPostgres) -> int:
    return int((embedded.pgdata / "postmaster.pid").read_text().splitlines()[0])


def gone(pid: int) -> bool:
    """The process has exited and been reaped (a zombie still holds its pid)."""
    try:
        psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    return False


def restart(embedded: EmbeddedPostgres, killed: int, timeout: float = 30) -> None:
    """Start PostgreSQL again on the same data directory after its postmaster was killed.

    The wheel keeps one handle per data directory (a new ``EmbeddedPostgres(…).start()`` would
    get the old, already "started" handle back), so start that handle again. It and PostgreSQL
    take a live pid in ``postmaster.pid`` for a running server, and the killed postmaster stays
    a zombie until it is reaped: wait for that (remove the file if it never happens). Orphaned
    backends keep the old shared memory attached for a moment, which makes a start fail with
    "pre-existing shared memory block is still in use": retry.
    """
    deadline = time.monotonic() + timeout
    reaped_by = time.monotonic() + timeout / 3
    while not gone(killed) and time.monotonic() < reaped_by:
        time.sleep(0.05)
    if not gone(killed):
        (embedded.pgdata / "postmaster.pid").unlink(missing_ok=True)
    server = embedded._server
    while True:
        try:
            server.start()
        except (subprocess.SubprocessError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        assert postmaster_pid(embedded) != killed
        return


async def owner_connection(url: URL) -> asyncpg.Connection:
    return await asyncpg.connect(
        user=url.username, host=url.query["host"], database=url.database  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("moment", ["20-50 ms in", "mid-batch"])
async def test_postgres_killed_during_concurrent_migrations(moment: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mwplu-kill-"))
    embedded: EmbeddedPostgres | None = None
    engine: AsyncEngine | None = None
    try:
        # given a dedicated server (the shared one serves other tests) with 40 v1 conversations
        embedded = await asyncio.to_thread(EmbeddedPostgres(tmp).start)
        url = embedded.url()
        await asyncio.to_thread(migrate.upgrade, render(url))
        conn = await owner_connection(url)
        try:
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
            conversations = await arrange(conn, users=4, conversations=40, messages=200)
        finally:
            await conn.close()
        settings = Settings(jwt_secret=JWT_SECRET, env="test")
        engine = create_engine(embedded.url(user="authenticator"), settings, pool_size=4)
        app = create_app(settings, engine=engine)
        socket_dir = embedded.socket_dir
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway.test", timeout=60
        ) as client:
            assert (await client.get("/readyz")).status_code == 200  # the pool is warm
            killed = postmaster_pid(embedded)
            acked: list[uuid.UUID] = []
            progress = asyncio.Event()

            async def call(user: uuid.UUID, v1: uuid.UUID) -> httpx.Response:
                response = await migrate_call(client, user, v1)
                if succeeded(response):
                    acked.append(v1)
                    progress.set()
                return response

            async def kill() -> float:
                if moment == "mid-batch":
                    # after a random number of commits, a random 0-20 ms into the next ones
                    commits = random.randint(1, 12)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(20):
                            while len(acked) < commits:
                                progress.clear()
                                await progress.wait()
                    await asyncio.sleep(random.uniform(0, 0.02))
                else:
                    await asyncio.sleep(random.uniform(0.02, 0.05))
                os.kill(killed, signal.SIGKILL)
                return time.monotonic()

            # when the postmaster is killed during 40 concurrent migrations
            started = time.monotonic()
            killed_at, *responses = await asyncio.wait_for(
                asyncio.gather(
                    kill(), *(call(u, v1) for u, v1 in conversations), return_exceptions=True
                ),
                timeout=60,
            )
            assert isinstance(killed_at, float), killed_at
            answered = time.monotonic()
            acknowledged = {
                v1 for (_, v1), r in zip(conversations, responses, strict=True) if succeeded(r)
            }
            # and PostgreSQL is started again on the same data directory
            await asyncio.to_thread(restart, embedded, killed)
            back = time.monotonic()
            assert embedded.socket_dir == socket_dir  # the engine's URL still points at it

            # then the same gateway serves again within seconds, without a restart of its own
            async def serves() -> bool:
                try:
                    ready = await client.get("/readyz")
                    query = await client.post(
                        "/graphql", json={"query": SERVING},
                        headers=bearer(str(conversations[0][0])),
                    )
                except httpx.HTTPError:
                    return False
                return (
                    ready.status_code == 200
                    and query.status_code == 200
                    and "errors" not in query.json()
                )

            assert await eventually(serves, within=10)
            serving_after = time.monotonic() - back

            # and no migration is partial; every acknowledged one survived the crash
            conn = await owner_connection(url)
            try:
                assert await partial_migrations(conn) == []
                done = await completed(conn)
                assert acknowledged <= done, acknowledged - done
                assert await conn.fetchval("SELECT count(*) FROM v2_conversations") == len(done)
                assert await none_left_open(conn), await conn.fetch(OPEN_TRANSACTIONS)

                # and the remaining conversations then migrate
                await migrate_rest(client, conversations, done)
                assert await partial_migrations(conn) == []
                assert await completed(conn) == {v1 for _, v1 in conversations}
            finally:
                await conn.close()
            await assert_pool_clean(engine)
        failures = Counter(failure(r) for r in responses if not succeeded(r))
        print(
            f"\npostgres killed {killed_at - started:.3f} s in ({moment}): {len(acknowledged)} "
            f"acknowledged, {len(done)} committed of {len(conversations)}; failed: "
            f"{dict(failures)}; requests ended "
            f"{answered - killed_at:.3f} s after the kill; database back "
            f"{back - killed_at:.2f} s after it; gateway serving {serving_after:.3f} s later"
        )
    finally:
        if engine is not None:
            await engine.dispose()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        shutil.rmtree(tmp, ignore_errors=True)
