"""Database access: engines, the per-request viewer transaction, and a statement counter.

The request boundary owns the transaction: ``open_transaction`` begins it and switches to the
viewer's role with their claims set *locally* (as PostgREST does) in one round trip, and
``end_transaction`` commits or rolls back. Store functions take the resulting ``Db`` and never
commit.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Engine, Result, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql import Executable

from gateway.settings import Settings

log = logging.getLogger(__name__)

SETUP_MARKER = "set_config('role'"
ROLES = ("anon", "authenticated", "service_role")


class DatabaseUrlError(ValueError):
    """DATABASE_URL cannot be parsed or names an unsupported driver."""


def async_url(url: str | URL) -> URL:
    """Parse a libpq-style URL and point it at the asyncpg driver."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        raise DatabaseUrlError(f"malformed database URL: {_redact(str(url))}") from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise DatabaseUrlError(
            f"unsupported database URL scheme {parsed.drivername!r} (expected postgresql://)"
        )
    return parsed.set(drivername="postgresql+asyncpg")


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable>"


def create_engine(
    url: str | URL, settings: Settings, *, pool_size: int | None = None
) -> AsyncEngine:
    connect_args: dict[str, Any] = {"command_timeout": settings.command_timeout_s}
    if settings.pgbouncer:
        # Transaction pooling cannot keep server-side prepared statements between transactions.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
    return create_async_engine(
        async_url(url),
        pool_size=pool_size or settings.pool_size,
        max_overflow=0,
        # No ping before each checkout (it cost three round trips: BEGIN, ";", ROLLBACK):
        # ``open_transaction`` replaces a connection the server dropped instead.
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args=connect_args,
        # jsonb columns (metadata, search_context, …) are decoded on every row.
        json_deserializer=orjson.loads,
        json_serializer=lambda value: orjson.dumps(value).decode(),
    )


# Listeners of the statements sent on the driver's connection, past SQLAlchemy's events.
_driver_listeners: weakref.WeakKeyDictionary[Engine, list[Callable[[str], None]]]
_driver_listeners = weakref.WeakKeyDictionary()


@dataclass
class StatementCounter:
    """Counts SQL statements sent through an engine; tests and the benchmark read it.

    ``reads`` leaves out the per-transaction role/claims set-up statement.
    """

    statements: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, engine: AsyncEngine) -> StatementCounter:
        event.listen(engine.sync_engine, "before_cursor_execute", self._on_execute)
        _driver_listeners.setdefault(engine.sync_engine, []).append(self._on_driver)
        return self

    def detach(self, engine: AsyncEngine) -> None:
        event.remove(engine.sync_engine, "before_cursor_execute", self._on_execute)
        _driver_listeners.get(engine.sync_engine, []).remove(self._on_driver)

    def _on_execute(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self._on_driver(statement)

    def _on_driver(self, statement: str) -> None:
        with self._lock:
            self.statements.append(statement)

    def reset(self) -> None:
        with self._lock:
            self.statements.clear()

    @property
    def total(self) -> int:
        return len(self.statements)

    @property
    def reads(self) -> int:
        return sum(1 for s in self.statements if SETUP_MARKER not in s)


@dataclass(frozen=True)
class Viewer:
    """Who is asking: the database role to run as and the JWT claims to expose to RLS."""

    role: str
    user_id: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def anonymous(cls) -> Viewer:
        return cls(role="anon", claims={"role": "anon"})

    @classmethod
    def service(cls) -> Viewer:
        return cls(role="service_role", claims={"role": "service_role"})

    @classmethod
    def user(cls, user_id: str) -> Viewer:
        return cls(
            role="authenticated",
            user_id=user_id,
            claims={"sub": user_id, "role": "authenticated", "aud": "authenticated"},
        )


class Db:
    """One request's connection. Statements are serialised: aiodataloader may dispatch several
    loaders in the same tick, and one connection runs one statement at a time."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._lock = asyncio.Lock()
        self._closed = False

    async def hold(self) -> None:
        """Wait until no statement runs, then refuse every further one."""
        await self._lock.acquire()
        self._closed = True
        self._lock.release()

    async def execute(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Result[Any]:
        async with self._lock:
            if self._closed:
                raise RuntimeError("the request's transaction is finished")
            return await self.conn.execute(statement, params)

    async def rows(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Sequence[Mapping[str, Any]]:
        """The result's rows as mappings keyed by column name (``gateway.store.Row``)."""
        result = await self.execute(statement, params)
        # RowMapping is typed as keyed by str or column objects; mappings() keys are the names.
        return cast(Sequence[Mapping[str, Any]], result.mappings().all())

    async def scalar(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        result = await self.execute(statement, params)
        return result.scalar()

    async def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Rows of ``sql`` (``:name`` parameters) straight from the driver: records that read
        by position and by name, without SQLAlchemy's per-statement and per-row work (the read
        engine's statements return thousands of rows). Errors are raised as SQLAlchemy's."""
        query, names = positional(sql)
        args = [params[name] for name in names] if params else []
        async with self._lock:
            if self._closed:
                raise RuntimeError("the request's transaction is finished")
            for listener in _driver_listeners.get(self.conn.sync_engine, ()):
                listener(query)
            driver = _driver(self.conn)
            try:
                return list(await driver.fetch(query, *args))
            except Exception as exc:
                raise _dbapi_error(self.conn, driver, query, exc) from exc


# ``:name`` bind parameters as SQLAlchemy's ``text()`` reads them (not ``::type`` casts).
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


@functools.lru_cache(maxsize=1024)
def positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with its ``:name`` parameters as ``$1``, ``$2``… and the names in that order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _BIND.sub(number, sql), tuple(names)


# The viewer's settings, local to the transaction; ``{role}`` etc. are bind parameters in
# ``become`` and literals in ``begin_as``.
_SETUP = (
    "SELECT set_config('role', {role}, true), "
    "set_config('request.jwt.claims', {claims}, true), "
    "set_config('statement_timeout', {timeout}, true)"
)
SETUP = text(_SETUP.format(role=":role", claims=":claims", timeout=":timeout"))


def statement_timeout_ms(settings: Settings, role: str) -> int:
    return {
        "anon": settings.statement_timeout_anon_ms,
        "authenticated": settings.statement_timeout_authenticated_ms,
    }.get(role, settings.statement_timeout_service_ms)


def viewer_settings(viewer: Viewer, settings: Settings) -> dict[str, str]:
    """The values of ``SETUP`` for ``viewer``."""
    if viewer.role not in ROLES:
        raise ValueError(f"unknown role {viewer.role!r}")
    return {
        "role": viewer.role,
        "claims": json.dumps(dict(viewer.claims)),
        "timeout": str(statement_timeout_ms(settings, viewer.role)),
    }


async def become(db: Db, viewer: Viewer, settings: Settings) -> None:
    """Switch the open transaction to ``viewer``; every setting is local to the transaction."""
    await db.execute(SETUP, viewer_settings(viewer, settings))


def literal(value: str) -> str:
    """``value`` as an escape-string literal, which reads the same whatever
    ``standard_conforming_strings`` is."""
    if "\x00" in value:
        raise ValueError("a text literal cannot hold NUL")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def begin_as(viewer: Viewer, settings: Settings) -> str:
    """BEGIN and ``become``'s settings as one simple query (one round trip; only a
    single-statement query can take bind parameters, so the values are literals)."""
    values = viewer_settings(viewer, settings)
    return "BEGIN; " + _SETUP.format(**{name: literal(v) for name, v in values.items()})


def _driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under ``conn``."""
    return conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]


async def _send(conn: AsyncConnection, sql: str) -> str:
    """``sql`` as a simple query on the driver's connection; its errors are raised as
    SQLAlchemy raises a statement's (a ``DBAPIError``, with ``connection_invalidated`` when the
    connection broke), so that callers handle one kind of error whichever path sent it."""
    driver = _driver(conn)
    try:
        return str(await driver.execute(sql))
    except Exception as exc:
        raise _dbapi_error(conn, driver, sql, exc) from exc


def _dbapi_error(
    conn: AsyncConnection, driver: Any, sql: str, exc: Exception
) -> StatementError:
    return DBAPIError.instance(
        sql,
        None,
        exc,
        Exception,
        connection_invalidated=driver.is_closed(),
        dialect=conn.dialect,
    )


def pool_capacity(engine: AsyncEngine) -> int | None:
    """How many connections the engine's pool holds at most (None: no limit, as NullPool)."""
    pool = engine.sync_engine.pool
    if isinstance(pool, QueuePool):
        return pool.size() + max(0, pool._max_overflow)
    return None


def _attempts(engine: AsyncEngine) -> int:
    """Every pooled connection may have been dropped at once (a server restart)."""
    return (pool_capacity(engine) or 1) + 1


async def open_transaction(
    engine: AsyncEngine, viewer: Viewer, settings: Settings
) -> AsyncConnection:
    """A pooled connection with a transaction open as ``viewer``.

    Statements go through SQLAlchemy as usual; the connection is in its AUTOCOMMIT mode, so
    SQLAlchemy sends no BEGIN or COMMIT of its own, and ``end_transaction`` ends the
    transaction. Three round trips per request (set-up, the statement, COMMIT) where
    SQLAlchemy's own transaction and ping took seven.

    Connections are not pinged before use: one the server dropped (a restart, an idle
    timeout) fails the set-up, which nothing depends on yet, and is replaced."""
    setup = begin_as(viewer, settings)
    for attempt in range(_attempts(engine), 0, -1):
        conn = await engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            for listener in _driver_listeners.get(engine.sync_engine, ()):
                listener(setup)
            await _send(conn, setup)
        except BaseException:
            try:
                dropped = _driver(conn).is_closed()
            except Exception:
                dropped = False
            await _discard(conn)
            if dropped and attempt > 1:
                continue
            raise
        return conn
    raise AssertionError("unreachable")  # pragma: no cover


async def end_transaction(conn: AsyncConnection, *, commit: bool) -> None:
    """COMMIT (or ROLLBACK) what ``open_transaction`` began and return the connection to the
    pool. A COMMIT that fails, or that the server answers with ROLLBACK (the transaction had
    failed), is an error: nothing is reported written that was not. A ROLLBACK that cannot be
    sent (the connection broke, or a cancelled statement left it invalid) discards the
    connection, and with it the transaction, without an error of its own: the request is
    already failing for its own reason."""
    if conn.invalidated:
        await conn.close()
        if commit:
            raise RuntimeError("the transaction was not committed (its connection broke)")
        return
    try:
        status = await _send(conn, "COMMIT" if commit else "ROLLBACK")
    except Exception:
        await _discard(conn)
        if commit:
            raise
        log.warning("rollback failed; the connection was discarded", exc_info=True)
        return
    except BaseException:
        await _discard(conn)
        raise
    await conn.close()
    if commit and status != "COMMIT":
        raise RuntimeError(f"the transaction was not committed (the server answered {status})")


async def _discard(conn: AsyncConnection) -> None:
    """Close ``conn`` for good: its transaction's state is unknown."""
    try:
        await conn.invalidate()
    finally:
        await conn.close()


@asynccontextmanager
async def viewer_transaction(
    engine: AsyncEngine, viewer: Viewer, settings: Settings
) -> AsyncIterator[Db]:
    """A transaction run as ``viewer``: committed on success, rolled back on any error."""
    conn = await open_transaction(engine, viewer, settings)
    try:
        yield Db(conn)
    except BaseException:
        await asyncio.shield(end_transaction(conn, commit=False))
        raise
    await end_transaction(conn, commit=True)
