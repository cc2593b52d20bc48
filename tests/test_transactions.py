"""The request transaction (``gateway.db.open_transaction`` / ``end_transaction``): begun with
the viewer's settings in one round trip, ended by the gateway, and on a connection that is
replaced when the server has dropped it; directly and through PgBouncer in transaction mode
(``route``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
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
    in_use,
    literal,
    open_transaction,
    pooled,
    release_idle,
    viewer_transaction,
)
from gateway.settings import Settings
from tests.pgbouncer import ROUTES

TRICKY = [
    "",
    "it's",
    "back\\slash",
    "\\'; SELECT pg_sleep(10); --",
    "E'nested' \\\\ ''",
    "accents: é ñ 漢字 🙂",
    '{"json": "with \\"quotes\\" and \\\\n"}',
    "$$dollar$$",
]


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("scs", ["on", "off"])
async def test_literals_read_back_as_written(owner: asyncpg.Connection, scs: str) -> None:
    await owner.execute(f"SET standard_conforming_strings = {scs}")
    for value in TRICKY:
        assert await owner.fetchval(f"SELECT {literal(value)}") == value
    with pytest.raises(ValueError, match="NUL"):
        literal("a\x00b")


async def test_the_viewers_claims_reach_the_transaction_intact(
    engine: AsyncEngine, settings: Settings, statements: StatementCounter
) -> None:
    claims = {"role": "authenticated", "sub": "00000000-0000-0000-0000-000000000001"}
    claims.update({f"k{i}": value for i, value in enumerate(TRICKY)})
    viewer = Viewer(role="authenticated", user_id=claims["sub"], claims=claims)
    async with viewer_transaction(engine, viewer, settings) as db:
        query = (
            "SELECT current_user AS who, current_setting('request.jwt.claims') AS claims,"
            " current_setting('statement_timeout') AS timeout"
        )
        row = (await db.rows(text(query)))[0]
    assert row["who"] == "authenticated"
    assert json.loads(row["claims"]) == claims
    assert row["timeout"] != "0"
    # one set-up statement, then the read; the settings were local to the transaction
    assert [SETUP_MARKER in s for s in statements.statements] == [True, False]
    async with pooled(engine) as conn:  # the connection the transaction gave back
        assert (await conn.execute(text("SELECT current_user"))).scalar() == "authenticator"


async def test_an_unknown_role_is_refused_before_any_sql(
    engine: AsyncEngine, settings: Settings, statements: StatementCounter
) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        await open_transaction(engine, Viewer(role="postgres"), settings)
    assert statements.total == 0


async def test_work_is_committed_or_rolled_back_as_asked(
    engine: AsyncEngine, settings: Settings, owner: asyncpg.Connection
) -> None:
    await owner.execute("CREATE TABLE scratch (n int); GRANT ALL ON scratch TO service_role")
    for n, commit in [(1, True), (2, False)]:
        conn = await open_transaction(engine, Viewer.service(), settings)
        await Db(conn).execute(text("INSERT INTO scratch VALUES (:n)"), {"n": n})
        await end_transaction(conn, commit=commit)
    with pytest.raises(RuntimeError, match="boom"):
        async with viewer_transaction(engine, Viewer.service(), settings) as db:
            await db.execute(text("INSERT INTO scratch VALUES (3)"))
            raise RuntimeError("boom")
    assert [r["n"] for r in await owner.fetch("SELECT n FROM scratch")] == [1]


async def test_a_failed_transaction_is_never_reported_committed(
    engine: AsyncEngine, settings: Settings, owner: asyncpg.Connection
) -> None:
    await owner.execute("CREATE TABLE scratch (n int); GRANT ALL ON scratch TO service_role")
    conn = await open_transaction(engine, Viewer.service(), settings)
    db = Db(conn)
    await db.execute(text("INSERT INTO scratch VALUES (1)"))
    with pytest.raises(Exception, match="division by zero"):
        await db.execute(text("SELECT 1 / 0"))
    # COMMIT of an aborted transaction is answered ROLLBACK: an error, not a success
    with pytest.raises(RuntimeError, match="not committed"):
        await end_transaction(conn, commit=True)
    assert await owner.fetchval("SELECT count(*) FROM scratch") == 0
    async with viewer_transaction(engine, Viewer.service(), settings) as db:  # the pool is fine
        assert await db.scalar(text("SELECT 1")) == 1


async def test_connections_the_server_dropped_are_replaced(
    engine: AsyncEngine, settings: Settings, owner: asyncpg.Connection
) -> None:
    # fill the pool (4 connections), then have the server drop every one of them
    conns = [await open_transaction(engine, Viewer.service(), settings) for _ in range(4)]
    pids = [await Db(c).scalar(text("SELECT pg_backend_pid()")) for c in conns]
    for conn in conns:
        await end_transaction(conn, commit=True)
    terminated = await owner.fetchval(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(p) FROM unnest($1::int[]) p) t",
        pids,
    )
    assert terminated == 4
    for _ in range(50):  # until the server has closed them
        if not await owner.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids
        ):
            break
        await asyncio.sleep(0.05)
    # every request still gets a working transaction, on a new connection
    answered = await asyncio.gather(*(_backend_pid(engine, settings) for _ in range(4)))
    assert not set(answered) & set(pids)


async def _backend_pid(engine: AsyncEngine, settings: Settings) -> int:
    async with viewer_transaction(engine, Viewer.service(), settings) as db:
        return int(await db.scalar(text("SELECT pg_backend_pid()")))


async def test_a_connection_cut_at_commit_is_a_dbapi_error_like_any_statements(
    engine: AsyncEngine, settings: Settings, owner: asyncpg.Connection
) -> None:
    """Callers (the bulk migration's retry, the CLI) handle SQLAlchemy's errors: a COMMIT
    sent on the driver's connection must fail the same way a statement would."""
    conn = await open_transaction(engine, Viewer.service(), settings)
    pid = await Db(conn).scalar(text("SELECT pg_backend_pid()"))
    assert await owner.fetchval("SELECT pg_terminate_backend($1)", pid)
    with pytest.raises(DBAPIError) as raised:
        for _ in range(50):  # until the driver sees the connection gone
            await asyncio.sleep(0.05)
            if _driver_closed(conn):
                break
        await end_transaction(conn, commit=True)
    assert raised.value.connection_invalidated
    async with viewer_transaction(engine, Viewer.service(), settings) as db:  # the pool is fine
        assert await db.scalar(text("SELECT 1")) == 1


def _driver_closed(conn: AsyncConnection) -> bool:
    return bool(conn.sync_connection.connection.driver_connection.is_closed())  # type: ignore[union-attr]


async def test_a_rollback_on_a_connection_the_server_dropped_logs_one_line(
    engine: AsyncEngine, settings: Settings, owner: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A restart under load left one traceback (two chained blocks) per failed ROLLBACK in the
    soak's log (DESIGN §11: one line): the connection is discarded, and that is all it says."""
    conn = await open_transaction(engine, Viewer.service(), settings)
    pid = await Db(conn).scalar(text("SELECT pg_backend_pid()"))
    assert await owner.fetchval("SELECT pg_terminate_backend($1)", pid)
    for _ in range(50):  # until the driver sees the connection gone
        await asyncio.sleep(0.05)
        if _driver_closed(conn):
            break
    caplog.set_level("INFO", logger="gateway.db")
    await end_transaction(conn, commit=False)  # no error of its own
    records = [r for r in caplog.records if "rollback failed" in r.getMessage()]
    assert len(records) <= 1 and all(r.exc_info is None for r in records), records
    async with viewer_transaction(engine, Viewer.service(), settings) as db:  # the pool is fine
        assert await db.scalar(text("SELECT 1")) == 1


async def test_the_next_transaction_takes_the_connection_the_last_one_gave_back(
    engine: AsyncEngine, settings: Settings
) -> None:
    """A connection whose transaction ended is kept for the next (no checkout from the pool):
    it counts as checked out of the pool, not as in use."""
    used = {id(await _driver_used(engine, settings)) for _ in range(5)}
    assert len(used) == 1
    assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    assert in_use(engine) == 0
    await release_idle(engine)
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_kept_connection_is_lent_to_other_users_of_the_pool(
    gateway_url: URL, settings: Settings
) -> None:
    """With every connection of the pool kept, a user outside request transactions (the
    readiness check) is lent one instead of waiting for the pool's timeout."""
    one = create_engine(gateway_url, settings, pool_size=1)
    try:
        used = await _driver_used(one, settings)
        async with asyncio.timeout(5):
            async with pooled(one) as conn:
                lent = (await conn.get_raw_connection()).driver_connection
                assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        assert lent is used
        assert await _driver_used(one, settings) is used
    finally:
        await one.dispose()


async def test_disposing_of_the_engine_closes_its_kept_connections(
    gateway_url: URL, settings: Settings, owner: asyncpg.Connection, route: str
) -> None:
    pooled_engine = create_engine(gateway_url, settings, pool_size=2)
    first, second = await asyncio.gather(
        *(open_transaction(pooled_engine, Viewer.service(), settings) for _ in range(2))
    )
    drivers = [c.sync_connection.connection.driver_connection for c in (first, second)]  # type: ignore[union-attr]
    pids = [await Db(c).scalar(text("SELECT pg_backend_pid()")) for c in (first, second)]
    for conn in (first, second):
        await end_transaction(conn, commit=True)
    assert in_use(pooled_engine) == 0
    assert not any(d.is_closed() for d in drivers)  # type: ignore[union-attr]
    await pooled_engine.dispose()
    assert all(d.is_closed() for d in drivers)  # type: ignore[union-attr]
    if route == "direct":  # (PgBouncer keeps its own server connections)
        for _ in range(100):  # the server sees the connections close
            left = await owner.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids
            )
            if not left:
                break
            await asyncio.sleep(0.02)
        assert left == 0


async def test_a_connection_past_the_pools_recycle_age_is_not_kept(
    engine: AsyncEngine, settings: Settings
) -> None:
    first = await _driver_used(engine, settings)
    engine.sync_engine.pool._recycle = 0  # type: ignore[attr-defined]
    assert await _driver_used(engine, settings) is first  # given back past its age: not kept
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await _driver_used(engine, settings) is not first  # the pool replaced it
    assert first.is_closed()


async def _driver_used(engine: AsyncEngine, settings: Settings) -> Any:
    """The driver connection a request transaction ran on."""
    conn = await open_transaction(engine, Viewer.service(), settings)
    used = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    await end_transaction(conn, commit=True)
    return used


async def test_a_connection_given_back_while_another_user_waits_for_the_pool_wakes_it(
    gateway_url: URL, settings: Settings
) -> None:
    """Only a checkin wakes a caller waiting in SQLAlchemy's pool: a connection given back
    while one waits is checked in, not kept (kept, the waiter would wait the pool's 30 s)."""
    one = create_engine(gateway_url, settings, pool_size=1)
    try:
        holder = await open_transaction(one, Viewer.service(), settings)

        async def lent() -> int:
            async with pooled(one) as conn:
                return int((await conn.execute(text("SELECT 1"))).scalar_one())

        waiter = asyncio.create_task(lent())
        await asyncio.sleep(0.1)
        assert not waiter.done()  # the pool's one connection is the holder's
        await end_transaction(holder, commit=True)
        async with asyncio.timeout(5):
            assert await waiter == 1
    finally:
        await one.dispose()


async def test_a_kept_connection_the_server_closed_is_not_taken(
    engine: AsyncEngine, settings: Settings, owner: asyncpg.Connection, route: str
) -> None:
    if route != "direct":
        pytest.skip("PgBouncer keeps the client's connection when the server's goes")
    kept = await _driver_used(engine, settings)
    assert await owner.fetchval("SELECT pg_terminate_backend($1)", kept.get_server_pid())
    for _ in range(100):
        if kept.is_closed():
            break
        await asyncio.sleep(0.02)
    assert kept.is_closed()
    async with pooled(engine) as conn:  # not the closed one: no error
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        assert (await conn.get_raw_connection()).driver_connection is not kept


async def test_a_connection_given_back_after_its_engine_was_disposed_of_is_closed(
    gateway_url: URL, settings: Settings
) -> None:
    disposed = create_engine(gateway_url, settings, pool_size=1)
    conn = await open_transaction(disposed, Viewer.service(), settings)
    used = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    await disposed.dispose()
    await end_transaction(conn, commit=True)
    assert used.is_closed()  # type: ignore[union-attr]
    assert await _driver_used(disposed, settings) is not used  # the new pool's
    await disposed.dispose()
