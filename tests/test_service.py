"""The service endpoints: /healthz (the process is up) and /readyz (the database is reachable
and migrated to the code's head)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy.engine import URL

from gateway.db import create_engine, migrate
from gateway.http.app import create_app
from gateway.settings import Settings
from tests.conftest import Server, render

UNREACHABLE = URL.create("postgresql+asyncpg", username="u", host="127.0.0.1", port=1,
                         database="x")


@asynccontextmanager
async def service(url: URL, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app, serving through an engine on ``url``."""
    engine = create_engine(url, settings, pool_size=1)
    app = create_app(settings, engine=engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            yield c
    finally:
        await engine.dispose()


async def test_healthz_is_200_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok"}


async def test_healthz_needs_no_database(settings: Settings) -> None:
    async with service(UNREACHABLE, settings) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200


async def test_readyz_is_200_with_the_head_on_a_migrated_database(
    client: httpx.AsyncClient,
) -> None:
    # the client's engine logs in as authenticator, as the served app does
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "revision": migrate.head_revision()}


async def test_readyz_follows_migrations(
    server: Server, empty_database: str, settings: Settings
) -> None:
    owner = server.database_url(empty_database)
    async with service(owner, settings) as client:
        # given an unmigrated database, then the service is not ready, and says why
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "reason": "migrations have not been applied",
        }

        # when it is migrated to head, then the service is ready at the head revision
        migrate.upgrade(render(owner))
        response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ready", "revision": migrate.head_revision()}

        # when it is downgraded one revision, then it is not ready again
        migrate.downgrade(render(owner), "0005_bridge")
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["reason"] == (
            f"database at revision 0005_bridge, expected {migrate.head_revision()}"
        )


async def test_readyz_is_503_when_the_database_is_unreachable(settings: Settings) -> None:
    async with service(UNREACHABLE, settings) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["reason"] == "ConnectionRefusedError"
    assert "127.0.0.1" not in response.text  # no connection details leak
