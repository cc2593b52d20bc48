"""The gateway behind a real PgBouncer in transaction mode (DESIGN §6; issue 16, items 9 and
11): PgBouncer sends the server nothing of its own per transaction (it used to send
``SET client_encoding`` before each one), and ``mwplu-gateway serve --workers 2`` through it
keeps two alternating viewers apart. tests/test_isolation.py and tests/test_transactions.py
also run through it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from gateway.db import SETUP_MARKER
from tests.conftest import JWT_SECRET, Server, bearer, render
from tests.factories import make_user, make_v1_conversation, make_v2_conversation
from tests.pgbouncer import PgBouncer
from tests.test_cli import free_port

REQUESTS = 100
WORKER_REQUESTS = 300

OWNERS = """
{
  viewer { databaseId }
  conversations(first: 100, filter: {includeMigrated: true}) {
    edges { node { databaseId owner { databaseId } } }
  }
}
"""


@pytest.fixture
def route() -> str:
    return "pgbouncer"


async def server_log(owner: asyncpg.Connection) -> Path:
    """The file the server logs to: the logging collector's, else the embedded server's
    stderr (``pg_ctl -l``: ``log`` in its data directory)."""
    directory = Path(await owner.fetchval("SHOW data_directory"))
    current = await owner.fetchval("SELECT pg_current_logfile()")
    path = directory / current if current else directory / "log"
    if not os.access(path, os.R_OK):
        pytest.skip(f"the server's log ({path}) cannot be read here")
    return path


async def two_viewers(owner: asyncpg.Connection) -> dict[uuid.UUID, int]:
    """Two users with conversations in both stores: how many each may see."""
    seen = {}
    for name, count in (("Alice A", 2), ("Bruno B", 3)):
        user = await make_user(owner, name)
        for i in range(count):
            await make_v1_conversation(owner, user, last=-i)
            await make_v2_conversation(owner, user, last=-i - 0.5)
        seen[user] = 2 * count
    return seen


def foreign_rows(body: dict[str, object], user: uuid.UUID, expected: int) -> list[str]:
    """What in an ``OWNERS`` answer is not ``user``'s own (empty when all is well)."""
    assert "errors" not in body, body
    data = body["data"]
    assert isinstance(data, dict)
    edges = data["conversations"]["edges"]
    owners = [edge["node"]["owner"]["databaseId"] for edge in edges]
    assert data["viewer"] == {"databaseId": str(user)} and len(owners) == expected, body
    return [o for o in owners if o != str(user)]


async def test_pgbouncer_sends_the_server_no_set_of_its_own(
    owner: asyncpg.Connection,
    database: str,
    client: httpx.AsyncClient,
    pgbouncer: PgBouncer,
) -> None:
    """asyncpg's start-up packet asked for client_encoding 'utf-8' and the server reports
    UTF8: PgBouncer sent ``SET client_encoding`` before every transaction (REQUESTS + a few)."""
    viewers = list((await two_viewers(owner)).items())
    log = await server_log(owner)
    start = log.stat().st_size
    # Every statement of this database's sessions (none through PgBouncer yet) is logged.
    await owner.execute(f"ALTER DATABASE {database} SET log_statement = 'all'")
    for i in range(REQUESTS):
        user, expected = viewers[i % 2]
        response = await client.post(
            "/graphql", json={"query": OWNERS}, headers=bearer(str(user))
        )
        assert foreign_rows(response.json(), user, expected) == []
    with log.open("rb") as file:
        file.seek(start)
        logged = file.read().decode(errors="replace")
    assert f"login attempt: db={database} user=authenticator" in pgbouncer.log
    # each request's BEGIN and set-up reached the server through PgBouncer, logged …
    # ("COMMIT; BEGIN READ ONLY; SET LOCAL role = …": a query's set-up ends the last one's read)
    setups = re.findall(r"statement: (?:COMMIT; )?BEGIN[A-Z ]*; " + re.escape(SETUP_MARKER), logged)
    assert len(setups) == REQUESTS
    # … and nothing PgBouncer adds to a transaction
    assert re.findall(r"statement: SET .*", logged) == []


# --- mwplu-gateway serve --workers 2 -------------------------------------------------------------


@contextmanager
def serving(url: str, home: Path, workers: int) -> Iterator[tuple[int, list[int]]]:
    """``mwplu-gateway serve --workers N`` on a free port, once every worker has started:
    its port and the workers' process ids."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "DATABASE_URL": url,
        "JWT_SECRET": JWT_SECRET,
        "GATEWAY_ENV": "test",
        "GATEWAY_PGBOUNCER": "true",
        "GATEWAY_POOL_SIZE": "4",
    }
    log = home / "stderr.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.tools.cli", "serve", "--workers", str(workers),
             "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 60
        while log.read_text().count("Application startup complete") < workers:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)
        started = re.findall(r"Started server process \[(\d+)\]", log.read_text())
        yield port, [int(pid) for pid in started]
    finally:
        process.terminate()
        process.wait(timeout=30)


def connections_to(port: int, pids: list[int]) -> dict[int, int]:
    """Per process: its TCP connections to 127.0.0.1:``port`` (Linux's /proc)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] == f"0100007F:{port:04X}":
            inodes.add(f"socket:[{fields[9]}]")
    return {
        pid: sum(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir())
        for pid in pids
    }


async def test_two_workers_through_pgbouncer_keep_alternating_viewers_apart(
    server: Server,
    database: str,
    owner: asyncpg.Connection,
    pgbouncer: PgBouncer,
    tmp_path: Path,
) -> None:
    viewers = list((await two_viewers(owner)).items())
    url = render(pgbouncer.url(server.database_url(database, "authenticator")))
    with serving(url, tmp_path, workers=2) as (port, workers):
        limit = asyncio.Semaphore(8)  # requests in flight, each on a new connection: whichever
        # worker is free accepts it

        async def request(client: httpx.AsyncClient, i: int) -> list[str]:
            user, expected = viewers[i % 2]
            async with limit:
                response = await client.post(
                    "/graphql", json={"query": OWNERS}, headers=bearer(str(user))
                )
            assert response.status_code == 200, response.text
            return foreign_rows(response.json(), user, expected)

        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=30,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:
            answers = await asyncio.gather(
                *(request(client, i) for i in range(WORKER_REQUESTS))
            )
        assert [row for rows in answers for row in rows] == []
        # both workers served requests, each through its own connections to PgBouncer
        clients = connections_to(pgbouncer.port, workers)
        assert len(clients) == 2 and all(clients.values()), clients
