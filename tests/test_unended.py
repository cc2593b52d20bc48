"""A query's transaction is read-only and its COMMIT is deferred (``gateway.db.transactions``,
``UNENDED``): the connection is kept with the transaction open, and whoever takes it next ends
it first (the next request transaction in its own set-up's round trip), or the sweep does within
``END_AFTER_S``. Directly and through PgBouncer in transaction mode."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db import (
    SETUP_MARKER,
    Db,
    StatementCounter,
    Viewer,
    end_transaction,
    open_transaction,
    pooled,
    release_idle,
)
from gateway.db.kept import END_AFTER_S
from gateway.settings import Settings
from tests.conftest import bearer
from tests.factories import make_user, make_v2_conversation
from tests.pgbouncer import ROUTES


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def in_transaction(conn: AsyncConnection) -> bool:
    return bool(conn.sync_connection.connection.driver_connection.is_in_transaction())  # type: ignore[union-attr]


async def read_as(engine: AsyncEngine, viewer: Viewer, settings: Settings) -> AsyncConnection:
    """A read-only transaction as ``viewer`` that read who it is, ended; its connection."""
    conn = await open_transaction(engine, viewer, settings, read_only=True)
    assert await Db(conn).scalar(text("SELECT current_user")) == viewer.role
    await end_transaction(conn, commit=True)
    return conn


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
    engine: AsyncEngine, settings: Settings, statements: StatementCounter
) -> None:
    """The next transaction's set-up ends the open one first, then runs as its own viewer with
    only its own settings."""
    user = Viewer.user(str(uuid.uuid4()))
    first = await read_as(engine, Viewer.service(), settings)
    assert in_transaction(first)  # kept with its transaction open
    statements.reset()
    conn = await open_transaction(engine, user, settings)
    assert conn is first
    assert [s.split("; ")[:2] for s in statements.statements] == [["COMMIT", "BEGIN"]]
    row = (await Db(conn).rows(text(
        "SELECT current_user AS who, current_setting('request.jwt.claims') AS claims"
    )))[0]
    assert row["who"] == "authenticated"
    assert json.loads(row["claims"]) == dict(user.claims)
    await end_transaction(conn, commit=True)  # not read-only: committed before it is kept
    assert not in_transaction(conn)


async def test_a_read_nobody_takes_is_ended_by_the_sweep(
    engine: AsyncEngine, settings: Settings, owner: asyncpg.Connection
) -> None:
    conn = await read_as(engine, Viewer.service(), settings)
    pid = conn.sync_connection.connection.driver_connection.get_server_pid()  # type: ignore[union-attr]
    assert in_transaction(conn)
    for _ in range(100):
        await asyncio.sleep(END_AFTER_S)
        if not in_transaction(conn):
            break
    assert not in_transaction(conn)
    state = await owner.fetchval("SELECT state FROM pg_stat_activity WHERE pid = $1", pid)
    assert state in ("idle", None)  # (None through PgBouncer: its server connection's pid)
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
    raw = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    await release_idle(engine)
    async with engine.connect() as checked_out:  # the pool's, as it was checked in
        assert (await checked_out.get_raw_connection()).driver_connection is raw
        assert not raw.is_in_transaction()
        assert (await checked_out.execute(text("SELECT current_user"))).scalar() == (
            "authenticator"
        )


async def test_a_query_over_http_leaves_its_read_to_the_next_request_a_mutation_does_not(
    client: httpx.AsyncClient, owner: asyncpg.Connection, statements: StatementCounter
) -> None:
    user = await make_user(owner, "Reader")
    await make_v2_conversation(owner, user)
    query = {"query": "{ conversations(first: 5) { totalCount } }"}
    mutation = {"query": 'mutation { createProject(input: {name: "P"}) { project { name } } }'}
    heads: list[list[str]] = []  # each request's set-up: its first two commands
    for body in (query, query, mutation, query):
        statements.reset()
        response = await client.post("/graphql", json=body, headers=bearer(str(user)))
        assert "errors" not in response.json(), response.json()
        (setup,) = [s for s in statements.statements if SETUP_MARKER in s]
        heads.append(setup.split("; ")[:2])
    assert heads[0][0] == "BEGIN READ ONLY"
    assert heads[1] == ["COMMIT", "BEGIN READ ONLY"]  # the first query's COMMIT, sent with it
    assert heads[2] == ["COMMIT", "BEGIN"]  # the mutation: read-write, committed before its answer
    assert heads[3][0] == "BEGIN READ ONLY"
    assert await owner.fetchval("SELECT count(*) FROM v2_projects WHERE name = 'P'") == 1
