"""A query's transaction is read-only and its COMMIT is deferred (``gateway.db.transactions``,
``UNENDED``): the connection is kept with the transaction open, and whoever takes it next ends
it first (the next request transaction in its own set-up's round trip), or the sweep does within
``END_AFTER_S``. Not through PgBouncer in transaction mode, where a read is committed at once."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db import (
    SETUP_MARKER,
    Db,
    StatementCounter,
    Viewer,
    create_engine,
    end_transaction,
    kept,
    open_transaction,
    pooled,
    release_idle,
)
from gateway.db.kept import END_AFTER_S
from gateway.settings import Settings
from tests.conftest import bearer
from tests.factories import make_user, make_v2_conversation
from tests.pgbouncer import ROUTES


def in_transaction(conn: AsyncConnection) -> bool:
    return bool(driver_of(conn).is_in_transaction())


def driver_of(conn: AsyncConnection) -> Any:
    return conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]


async def read_as(
    engine: AsyncEngine, viewer: Viewer, settings: Settings, generic_plans: bool = False
) -> AsyncConnection:
    """A read-only transaction as ``viewer`` that read who it is, ended; its connection."""
    conn = await open_transaction(engine, viewer, settings, generic_plans, read_only=True)
    assert await Db(conn).scalar(text("SELECT current_user")) == viewer.role
    await end_transaction(conn, commit=True)
    return conn


async def open_sessions(owner: asyncpg.Connection) -> list[str]:
    """The gateway's sessions idle in a transaction."""
    rows = await owner.fetch(
        "SELECT state FROM pg_stat_activity WHERE usename = 'authenticator' "
        "AND state LIKE 'idle in transaction%'"
    )
    return [r["state"] for r in rows]


@pytest.mark.parametrize("route", ROUTES)
async def test_a_read_only_transaction_cannot_write(
    engine: AsyncEngine, settings: Settings, owner: asyncpg.Connection
) -> None:
    await owner.execute("CREATE TABLE scratch (n int); GRANT ALL ON scratch TO service_role")
    conn = await open_transaction(engine, Viewer.service(), settings, read_only=True)
    with pytest.raises(DBAPIError, match="read-only transaction"):
        await Db(conn).execute(text("INSERT INTO scratch VALUES (1)"))
    await end_transaction(conn, commit=False)
    assert await owner.fetchval("SELECT count(*) FROM scratch") == 0


async def test_a_read_is_ended_by_the_next_transaction_in_its_set_up(
    engine: AsyncEngine, settings: Settings, statements: StatementCounter,
    owner: asyncpg.Connection,
) -> None:
    """The next transaction's set-up ends the open one first, then runs as its own viewer with
    only its own settings: read-write, the default plans, its claims."""
    await owner.execute("CREATE TABLE scratch (n int); GRANT ALL ON scratch TO authenticated")
    user = Viewer.user(str(uuid.uuid4()))
    first = await read_as(engine, Viewer.service(), settings, generic_plans=True)
    assert in_transaction(first)  # kept with its transaction open
    statements.reset()
    conn = await open_transaction(engine, user, settings)
    assert conn is first
    assert [s.split("; ")[:2] for s in statements.statements] == [["COMMIT", "BEGIN"]]
    row = (await Db(conn).rows(text(
        "SELECT current_user AS who, current_setting('request.jwt.claims') AS claims, "
        "current_setting('plan_cache_mode') AS plans, "
        "current_setting('transaction_read_only') AS read_only"
    )))[0]
    assert dict(row) | {"claims": json.loads(row["claims"])} == {
        "who": "authenticated", "claims": dict(user.claims), "plans": "auto", "read_only": "off",
    }
    await Db(conn).execute(text("INSERT INTO scratch VALUES (1)"))
    await end_transaction(conn, commit=True)  # not read-only: committed before it is kept
    assert not in_transaction(conn)
    assert await owner.fetchval("SELECT count(*) FROM scratch") == 1


async def test_a_read_nobody_takes_is_ended_by_the_sweep(
    engine: AsyncEngine, settings: Settings, owner: asyncpg.Connection
) -> None:
    conn = await read_as(engine, Viewer.service(), settings)
    assert in_transaction(conn)
    assert await open_sessions(owner) == ["idle in transaction"]
    for _ in range(100):
        await asyncio.sleep(END_AFTER_S)
        if not in_transaction(conn):
            break
    assert not in_transaction(conn)
    assert await open_sessions(owner) == []
    async with pooled(engine) as again:  # still kept, and ended
        assert again is conn
        assert (await again.execute(text("SELECT current_user"))).scalar() == "authenticator"


async def test_other_users_of_a_kept_connection_find_the_read_ended(
    engine: AsyncEngine, settings: Settings
) -> None:
    """The readiness check, the LISTEN connection (``pooled``, ``take_connection``) and the
    pool itself (``release_idle``) never get a connection in the viewer's transaction."""
    conn = await read_as(engine, Viewer.service(), settings)
    async with pooled(engine) as lent:
        assert lent is conn and not in_transaction(lent)
        assert (await lent.execute(text("SELECT current_user"))).scalar() == "authenticator"
    conn = await read_as(engine, Viewer.service(), settings)
    assert in_transaction(conn)
    raw = driver_of(conn)
    await release_idle(engine)
    async with engine.connect() as checked_out:  # the pool's, as it was checked in
        assert (await checked_out.get_raw_connection()).driver_connection is raw
        assert not raw.is_in_transaction()
        assert (await checked_out.execute(text("SELECT current_user"))).scalar() == (
            "authenticator"
        )


async def test_a_read_given_back_while_another_waits_for_the_pool_is_committed_at_once(
    gateway_url: URL, settings: Settings
) -> None:
    one = create_engine(gateway_url, settings, pool_size=1)
    try:
        holder = await open_transaction(one, Viewer.service(), settings, read_only=True)
        raw = driver_of(holder)

        async def lent() -> bool:
            async with pooled(one) as conn:
                assert driver_of(conn) is raw
                return in_transaction(conn)

        waiter = asyncio.create_task(lent())
        await asyncio.sleep(0.1)
        assert not waiter.done()
        await end_transaction(holder, commit=True)
        async with asyncio.timeout(5):
            assert await waiter is False
    finally:
        await one.dispose()


async def test_unended_connections_close_with_their_engine_or_their_server(
    gateway_url: URL, settings: Settings, owner: asyncpg.Connection
) -> None:
    """Disposing of the engine closes a connection kept in a read (the server rolls it back);
    one the server closed is replaced by the next transaction, which then answers."""
    disposed = create_engine(gateway_url, settings, pool_size=2)
    raw = driver_of(await read_as(disposed, Viewer.service(), settings))
    await disposed.dispose()
    assert raw.is_closed()
    engine = create_engine(gateway_url, settings, pool_size=2)
    try:
        raw = driver_of(await read_as(engine, Viewer.service(), settings))
        assert await owner.fetchval("SELECT pg_terminate_backend($1)", raw.get_server_pid())
        for _ in range(100):
            if raw.is_closed():
                break
            await asyncio.sleep(0.02)
        conn = await read_as(engine, Viewer.service(), settings)
        assert driver_of(conn) is not raw
    finally:
        await engine.dispose()


async def test_a_query_over_http_leaves_its_read_to_the_next_request_a_mutation_does_not(
    client: httpx.AsyncClient, owner: asyncpg.Connection, statements: StatementCounter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kept, "END_AFTER_S", 30.0)  # however slow the machine, no sweep between
    heads = await set_up_heads(client, owner, statements)
    assert heads[0][0] == "BEGIN READ ONLY"
    assert heads[1] == ["COMMIT", "BEGIN READ ONLY"]  # the first query's COMMIT, sent with it
    assert heads[2] == ["COMMIT", "BEGIN"]  # the mutation: read-write, committed before its answer
    assert heads[3][0] == "BEGIN READ ONLY"


@pytest.mark.parametrize("route", ["pgbouncer"])
async def test_through_pgbouncer_a_read_is_committed_at_once(
    engine: AsyncEngine, settings: Settings, client: httpx.AsyncClient,
    owner: asyncpg.Connection, statements: StatementCounter,
) -> None:
    """There the gateway is one of PgBouncer's clients: it holds no server connection in a
    transaction between requests."""
    conn = await read_as(engine, Viewer.service(), settings)
    assert not in_transaction(conn)
    heads = await set_up_heads(client, owner, statements)
    read, write = "BEGIN READ ONLY", "BEGIN"
    assert [h[0] for h in heads] == [read, read, write, read]


async def set_up_heads(
    client: httpx.AsyncClient, owner: asyncpg.Connection, statements: StatementCounter
) -> list[list[str]]:
    """The first two commands of the set-up of a query, a query, a mutation and a query."""
    user = await make_user(owner, "Reader")
    await make_v2_conversation(owner, user)
    query = {"query": "{ conversations(first: 5) { totalCount } }"}
    mutation = {"query": 'mutation { createProject(input: {name: "P"}) { project { name } } }'}
    heads: list[list[str]] = []
    for body in (query, query, mutation, query):
        statements.reset()
        response = await client.post("/graphql", json=body, headers=bearer(str(user)))
        assert "errors" not in response.json(), response.json()
        (setup,) = [s for s in statements.statements if SETUP_MARKER in s]
        heads.append(setup.split("; ")[:2])
    assert await owner.fetchval("SELECT count(*) FROM v2_projects WHERE name = 'P'") == 1
    return heads


async def test_a_kept_connection_closed_while_the_sweep_runs_is_dropped_quietly(
    engine: AsyncEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The engine disposed of (at shutdown) while the sweep ends one read: the other kept
    connection is closed under it, and is dropped without an error or a traceback."""
    first = await open_transaction(engine, Viewer.service(), settings, read_only=True)
    second = await open_transaction(engine, Viewer.service(), settings, read_only=True)
    for conn in (first, second):
        await end_transaction(conn, commit=True)  # both kept, their reads open
    ended = kept._ended
    closed = []

    async def closing_the_other(conn: AsyncConnection) -> bool:
        other = second if conn is first else first
        if not closed:
            other.sync_connection.close()  # type: ignore[union-attr]  # as the disposal does
            closed.append(other)
        return await ended(conn)

    monkeypatch.setattr(kept, "_ended", closing_the_other)
    for _ in range(100):
        await asyncio.sleep(END_AFTER_S)
        if closed and not in_transaction(first if closed[0] is second else second):
            break
    assert closed
    assert not [r for r in caplog.records if r.name == "gateway.db.kept"], caplog.text
    async with pooled(engine) as lent:  # the kept one that was not closed still serves
        assert (await lent.execute(text("SELECT 1"))).scalar() == 1


async def test_a_kept_connection_the_sweep_cannot_give_back_is_closed(
    engine: AsyncEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unexpected failure while the sweep ends a read: the connection is closed, not left
    checked out for the collector to find."""
    conn = await read_as(engine, Viewer.service(), settings)
    raw = driver_of(conn)

    async def failing(conn: AsyncConnection, *, end: bool = True) -> bool:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(kept, "_ready", failing)
    for _ in range(100):
        await asyncio.sleep(END_AFTER_S)
        if raw.is_closed():
            break
    assert raw.is_closed()
    assert "could not be given back" in caplog.text


async def test_a_kept_connection_the_sweep_holds_when_cancelled_is_closed(
    engine: AsyncEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sweep cancelled while it ends a read (the event loop closing): the connection it
    took out of the kept ones is closed, not left checked out for the collector to find."""
    conn = await read_as(engine, Viewer.service(), settings)
    raw = driver_of(conn)
    holding = asyncio.Event()

    async def held(conn: AsyncConnection, *, end: bool = True) -> bool:
        holding.set()
        await asyncio.sleep(30)
        return True

    monkeypatch.setattr(kept, "_ready", held)
    swept = kept._idle_of(engine).of_loop()
    async with asyncio.timeout(5):
        await holding.wait()
    sweeping = swept.sweeping
    assert sweeping is not None and conn not in swept
    sweeping.cancel()
    await asyncio.wait([sweeping], timeout=5)
    assert sweeping.cancelled()
    assert raw.is_closed()
    assert conn.sync_connection is None or conn.sync_connection.closed


async def test_kept_connections_the_sweep_takes_while_the_engine_is_disposed_of_are_all_closed(
    engine: AsyncEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Disposing of the engine closes its kept connections one at a time, each close awaited,
    while the sweep, under way, takes some of them out of the same list: every one is closed,
    by one or the other, none dropped still checked out (SQLAlchemy's SAWarning "The garbage
    collector is trying to clean up non-checked-in connection", an error in the tests)."""
    monkeypatch.setattr(kept, "END_AFTER_S", 0.0)  # all three due at the sweep's first look
    conns = [
        await open_transaction(engine, Viewer.service(), settings, read_only=True)
        for _ in range(3)
    ]
    first, second, _ = conns
    taken, disposing = asyncio.Event(), asyncio.Event()
    ended = kept._ended

    async def once_disposing(conn: AsyncConnection) -> bool:
        taken.set()  # the sweep holds the first, out of the list
        await disposing.wait()
        return await ended(conn)

    slow = second.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
    graceful = AsyncAdapt_asyncpg_connection._terminate_graceful_close

    async def closing_slowly(adapted: AsyncAdapt_asyncpg_connection) -> None:
        if adapted is slow and not disposing.is_set():  # the disposal's first close
            disposing.set()
            async with asyncio.timeout(5):
                # until the sweep has ended the first read and taken the second out of the list
                while second in swept:  # noqa: ASYNC110 (a list's content: no event to wait for)
                    await asyncio.sleep(0.001)
        elif adapted is slow:  # the sweep's close of the second: the disposal goes on
            await asyncio.sleep(0.1)
        await graceful(adapted)

    monkeypatch.setattr(kept, "_ended", once_disposing)
    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "_terminate_graceful_close",
                        closing_slowly)
    swept = kept._idle_of(engine).of_loop()
    for conn in conns:
        await end_transaction(conn, commit=True)  # kept with their reads open, in this order
    async with asyncio.timeout(5):
        await taken.wait()
    await engine.dispose()
    if swept.sweeping is not None:
        await asyncio.wait([swept.sweeping], timeout=5)
    left = [conn for conn in conns if not conn.sync_connection.closed]  # type: ignore[union-attr]
    for conn in left:
        await kept.discard(conn)
    assert not left, f"{conns.index(left[0])} of 0-2 left checked out"
    assert first.sync_connection.closed  # type: ignore[union-attr]
