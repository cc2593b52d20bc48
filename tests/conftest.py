"""Test fixtures: a real PostgreSQL (embedded by default, ``TEST_DATABASE_URL`` otherwise),
migrated once into a template database; every test gets a fresh clone of it."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth import issue_token
from gateway.db import StatementCounter, create_engine, migrate
from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.tools.embedded import EmbeddedPostgres
from tests import pgbouncer as bouncer

JWT_SECRET = "test-secret-0123456789-0123456789-0123456789"
TEMPLATE = "mwplu_test_template"
_numbers = itertools.count()


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server the tests may create databases on (as a superuser)."""

    url: URL  # a superuser URL; the database part is replaced per use

    def database_url(self, database: str, user: str | None = None) -> URL:
        url = self.url.set(database=database, drivername="postgresql+asyncpg")
        if user is not None:
            url = url.set(username=user, password=None)
        return url

    async def connect(
        self, database: str = "postgres", user: str | None = None
    ) -> asyncpg.Connection:
        url = self.database_url(database, user)
        return await asyncpg.connect(
            user=url.username,
            password=url.password,
            host=url.query.get("host") or url.host,
            port=url.port,
            database=url.database,
        )


def render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield Server(make_url(external))
        return
    with tempfile.TemporaryDirectory(prefix="mwplu-test-") as tmp:
        embedded = EmbeddedPostgres(Path(tmp)).start()
        try:
            yield Server(embedded.url())
        finally:
            embedded.stop()


@pytest.fixture(scope="session")
async def template(server: Server) -> str:
    conn = await server.connect()
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await conn.close()
    migrate.upgrade(render(server.database_url(TEMPLATE)))
    return TEMPLATE


async def create_database(server: Server, template: str | None = None) -> str:
    name = f"mwplu_test_{os.getpid()}_{next(_numbers)}"
    conn = await server.connect()
    try:
        clause = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
        await conn.execute(f"CREATE DATABASE {name}{clause}")
    finally:
        await conn.close()
    return name


async def drop_database(server: Server, name: str) -> None:
    conn = await server.connect()
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
async def database(server: Server, template: str) -> AsyncIterator[str]:
    """A fresh, migrated database (a clone of the template) for one test."""
    name = await create_database(server, template)
    yield name
    await drop_database(server, name)


@pytest.fixture
async def empty_database(server: Server) -> AsyncIterator[str]:
    """A fresh database with no migrations applied."""
    name = await create_database(server)
    yield name
    await drop_database(server, name)


@pytest.fixture
async def owner(server: Server, database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the database owner (RLS bypassed) to arrange and inspect rows."""
    conn = await server.connect(database)
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
def pgbouncer(server: Server) -> Iterator[bouncer.PgBouncer]:
    """A PgBouncer in transaction mode in front of ``server`` (tests/pgbouncer.py)."""
    with bouncer.running(server.url) as running:
        yield running


@pytest.fixture
def route() -> str:
    """How the gateway reaches the database: ``direct``; a module that also runs through
    PgBouncer overrides this with ``ROUTES`` (tests/pgbouncer.py)."""
    return "direct"


@pytest.fixture
def settings(route: str) -> Settings:
    return Settings(jwt_secret=JWT_SECRET, env="test", pgbouncer=route == "pgbouncer")


@pytest.fixture
def gateway_url(server: Server, database: str, route: str, request: pytest.FixtureRequest) -> URL:
    """The URL the gateway's engines use: ``authenticator``, directly or through PgBouncer."""
    url = server.database_url(database, "authenticator")
    if route == "pgbouncer":
        running: bouncer.PgBouncer = request.getfixturevalue("pgbouncer")
        return running.url(url)
    return url


@pytest.fixture
async def engine(gateway_url: URL, settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The gateway's engine: it logs in as ``authenticator``, like production."""
    eng = create_engine(gateway_url, settings, pool_size=4)
    yield eng
    await eng.dispose()


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[StatementCounter]:
    counter = StatementCounter().attach(engine)
    yield counter
    counter.detach(engine)


@pytest.fixture
async def client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c


def bearer(user_id: str, role: str = "authenticated") -> dict[str, str]:
    token = issue_token(Settings(jwt_secret=JWT_SECRET), user_id, role=role)
    return {"Authorization": f"Bearer {token}"}
