"""A database that cannot take the request (down, out of connection slots, restarting) is
SERVICE_UNAVAILABLE with HTTP 503 and Retry-After, and one log line — not a masked INTERNAL
with a traceback (DESIGN §11)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import URL

from gateway import context as context_module
from gateway.db import create_engine
from gateway.http.app import create_app
from gateway.settings import Settings
from tests.conftest import bearer
from tests.factories import make_user

UNREACHABLE = URL.create("postgresql+asyncpg", username="u", host="127.0.0.1", port=1,
                         database="x")
USER = "00000000-0000-4000-8000-000000000001"
QUERY = "{ viewer { id } conversations(first: 1) { totalCount } }"
MUTATION = 'mutation { createProject(input: {name: "x"}) { project { id } } }'


@asynccontextmanager
async def gateway(url: URL, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    engine = create_engine(url, settings, pool_size=1)
    app = create_app(settings, engine=engine)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
        ) as client:
            yield client
    finally:
        await engine.dispose()


@pytest.mark.parametrize("query", [QUERY, MUTATION])
async def test_an_unreachable_database_is_503_with_retry_after(
    settings: Settings, caplog: pytest.LogCaptureFixture, query: str
) -> None:
    caplog.set_level(logging.INFO)
    async with gateway(UNREACHABLE, settings) as client:
        response = await client.post("/graphql", json={"query": query}, headers=bearer(USER))
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert {e["extensions"]["code"] for e in body["errors"]} == {"SERVICE_UNAVAILABLE"}
    assert "retry" in body["errors"][0]["message"]
    assert not any(r.exc_info for r in caplog.records), "no traceback for an outage"
    assert sum("database unavailable" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(("query", "outcome"), [(QUERY, None), (MUTATION, "unknown")])
async def test_a_commit_the_database_does_not_confirm_is_503(
    client: httpx.AsyncClient, owner: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch,
    query: str, outcome: str | None,
) -> None:
    user = await make_user(owner)
    real_end = context_module.end_transaction

    async def connection_lost_at_commit(conn: Any, *, commit: bool) -> None:
        await real_end(conn, commit=False)
        if commit:
            raise ConnectionResetError("connection lost during COMMIT")

    monkeypatch.setattr(context_module, "end_transaction", connection_lost_at_commit)
    # a query's COMMIT sent at the end of its request (through PgBouncer, or a connection not
    # kept), not left to the connection's next user
    monkeypatch.setattr(context_module, "end_deferred", lambda conn: False)
    response = await client.post("/graphql", json={"query": query}, headers=bearer(str(user)))
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert error["extensions"].get("outcome") == outcome
    assert await owner.fetchval("SELECT count(*) FROM v2_projects") == 0


def test_a_statement_a_replica_cancelled_for_recovery_is_unavailable() -> None:
    """'canceling statement due to conflict with recovery' (40001): retried later, not a bug."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError

    from gateway.db.failures import unavailable

    conflict = asyncpg.exceptions.SerializationError(
        "canceling statement due to conflict with recovery"
    )
    assert unavailable(DBAPIError("SELECT 1", {}, conflict))
    assert not unavailable(DBAPIError("SELECT 1", {}, asyncpg.exceptions.DataError("bad")))
