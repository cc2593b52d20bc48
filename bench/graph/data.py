"""The database of a run: the embedded PostgreSQL or ``--database-url``'s server, migrated
with the project's migrations, loaded with COPY (``bench.graph_data``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import asyncpg
from sqlalchemy.engine import URL

from bench import graph_data
from bench.graph.procfs import postmaster_of, postmaster_pid
from bench.graph_data import Scale


class DatabaseError(RuntimeError):
    """The database named by ``--database-url`` cannot serve a run (unreachable, not empty)."""


@dataclass(frozen=True)
class Database:
    """The PostgreSQL server of a run and how to reach it: as its owner (migrations, the load,
    the bare SQL) and as ``authenticator`` (every server under load)."""

    owner_url: URL
    auth_url: URL
    # Set by the migrations for authenticator (a TCP login needs one; the socket trusts).
    authenticator_password: str | None
    embedded: bool
    # The embedded server's postmaster (an external one's is looked for by inspect_database).
    postmaster: int | None = None

    def describe(self, version: str) -> str:
        if self.embedded:
            return (
                f"embedded PostgreSQL {version} over a Unix socket "
                f"({self.owner_url.query.get('host')}), database {self.owner_url.database}"
            )
        where = shown(self.owner_url)
        return f"external PostgreSQL {version}, {where} (owner; the servers as authenticator)"


def embedded_database(pg: Any) -> Database:
    """The embedded server (``gateway.tools.embedded.EmbeddedPostgres``, started)."""
    return Database(
        pg.url(), pg.url(user="authenticator"), None, embedded=True,
        postmaster=postmaster_pid(pg.pgdata),
    )


def external_database(owner_url: URL, authenticator_password: str) -> Database:
    """``--database-url``: an owner (superuser) URL; the servers log in as ``authenticator``
    with the password the migrations give it."""
    auth_url = owner_url.set(username="authenticator", password=authenticator_password)
    return Database(owner_url, auth_url, authenticator_password, embedded=False)


def connect_args(url: URL) -> dict[str, Any]:
    """``asyncpg.connect``'s arguments for ``url``: a TCP host and port, or a socket directory
    (the embedded server's ``?host=``)."""
    args: dict[str, Any] = {
        "host": url.host or url.query.get("host"),
        "user": url.username,
        "database": url.database,
    }
    if url.port:
        args["port"] = url.port
    if url.password:
        args["password"] = url.password
    return args


def libpq_url(url: URL) -> str:
    """``url`` as node-postgres (PostGraphile) reads it."""
    if url.host is None:  # a socket directory
        return f"postgres://{url.username}@/{url.database}?host={url.query.get('host')}"
    user = quote(url.username or "", safe="")
    if url.password:
        user += ":" + quote(str(url.password), safe="")
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"postgres://{user}@{host}:{url.port or 5432}/{quote(url.database or '', safe='')}"


async def inspect_database(db: Database) -> tuple[str, int | None]:
    """The server's version and its postmaster's PID when its processes are this machine's
    (else None: their CPU cannot be measured from here). An external database must not be
    migrated yet: the run loads its own data and R7 changes it."""
    try:
        conn = await asyncpg.connect(**connect_args(db.owner_url))
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to {shown(db.owner_url)}: {exc}") from None
    try:
        version = str(await conn.fetchval("SHOW server_version"))
        if db.embedded:
            return version, db.postmaster
        if await conn.fetchval("SELECT to_regclass('alembic_version')") is not None:
            raise DatabaseError(
                f"database {db.owner_url.database!r} is already migrated: the bench needs a "
                f"fresh, empty database (it loads its own data, and R7 changes it); "
                f"CREATE DATABASE a new one"
            )
        row = await conn.fetchrow(
            "SELECT pid, extract(epoch FROM backend_start)::float8 AS began "
            "FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        )
        return version, postmaster_of(int(row["pid"]), float(row["began"]))
    finally:
        await conn.close()


def render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def shown(url: URL) -> str:
    """``url`` as the user would write it, without its password."""
    return url.set(drivername="postgresql").render_as_string(hide_password=True)


async def build_database(db: Database, scale: Scale) -> dict[str, Any]:
    from gateway.db import migrate

    migrate.upgrade(render(db.owner_url), authenticator_password=db.authenticator_password)
    owner = connect_args(db.owner_url)
    conn = await asyncpg.connect(**owner)
    try:
        began = time.perf_counter()
        timings = await graph_data.load(conn, scale)
        elapsed = time.perf_counter() - began
    finally:
        await conn.close()
    rows = sum(n for t, (n, _) in timings.items() if not t.startswith("("))
    print(f"load: {rows:,} rows with COPY in {elapsed:.1f}s")
    for table, (n, seconds) in timings.items():
        unit = "indexes" if table == "(secondary indexes)" else "rows"
        amount = f"{n:>10,} {unit}" if n else " " * 16
        print(f"  {table:<28}{amount}  {seconds:6.1f}s")
    return owner
