"""Engines (pools of asyncpg connections) and the statement counter that tests and the
benchmark read."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from gateway.db import instants, urls
from gateway.settings import Settings

SETUP_MARKER = "SET LOCAL role = "  # how every set-up starts (transactions.set_local)

# asyncpg's start-up packet asks for client_encoding 'utf-8', quotes included; the server takes
# it and reports UTF8. PgBouncer compares a client's start-up value with the server
# connection's as strings, so in transaction mode it sent SET client_encoding before every
# transaction. Asking for the name the server reports (a later start-up parameter wins, at
# the server and at PgBouncer) makes them equal. A URL's ``options`` may still override it.
STARTUP_SETTINGS = {"client_encoding": "UTF8"}


def create_engine(
    url: str | URL, settings: Settings, *, pool_size: int | None = None
) -> AsyncEngine:
    connect_args: dict[str, Any] = {
        "command_timeout": settings.command_timeout_s,
        **urls.connect_args(url),
    }
    connect_args["server_settings"] = {
        **STARTUP_SETTINGS,
        **connect_args.get("server_settings", {}),
        **instants.SESSION_SETTINGS,  # the text form of instants depends on them
    }
    if settings.pgbouncer:
        # Transaction pooling cannot keep server-side prepared statements between transactions.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
    return create_async_engine(
        urls.async_url(url),
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


# Listeners of the statements sent on the driver's connection, past SQLAlchemy's events: each
# is called with the statement and its positional arguments.
DriverListener = Callable[[str, Sequence[Any]], None]
driver_listeners: weakref.WeakKeyDictionary[Engine, list[DriverListener]]
driver_listeners = weakref.WeakKeyDictionary()


def base_engine(engine: Engine) -> Engine:
    """``engine``, or the engine it adds execution options to (``autocommit``): the one that
    owns the pool and the listeners."""
    return getattr(engine, "_proxied", engine)


def listeners_of(engine: Engine) -> list[DriverListener] | tuple[()]:
    """The driver listeners of ``engine``, or of the engine it adds options to."""
    return driver_listeners.get(base_engine(engine), ())


def announce(engine: Engine, sql: str, args: Sequence[Any] = ()) -> None:
    """Tell ``engine``'s driver listeners of ``sql`` and its ``args``, sent to the driver
    directly (SQLAlchemy tells its own listeners of what goes through it)."""
    for listener in listeners_of(engine):
        listener(sql, args)


_autocommit: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = weakref.WeakKeyDictionary()


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` (its pool) with its connections in AUTOCOMMIT mode as they are checked out:
    SQLAlchemy sends no BEGIN or COMMIT of its own (``open_transaction`` does), and the mode
    is set with the checkout, not by a second call into SQLAlchemy's greenlet bridge."""
    found = _autocommit.get(engine)
    if found is None:
        found = _autocommit[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return found


@dataclass
class StatementCounter:
    """Counts SQL statements sent through an engine, with their arguments; tests and the
    benchmark read it.

    ``reads`` leaves out the per-transaction role/claims set-up statement.
    """

    statements: list[str] = field(default_factory=list)
    # each statement's positional arguments, as the driver got them
    arguments: list[tuple[Any, ...]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, engine: AsyncEngine) -> StatementCounter:
        event.listen(engine.sync_engine, "before_cursor_execute", self._on_execute)
        driver_listeners.setdefault(engine.sync_engine, []).append(self._on_driver)
        return self

    def detach(self, engine: AsyncEngine) -> None:
        event.remove(engine.sync_engine, "before_cursor_execute", self._on_execute)
        driver_listeners.get(engine.sync_engine, []).remove(self._on_driver)

    def _on_execute(
        self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any
    ) -> None:
        self._on_driver(statement, parameters or ())

    def _on_driver(self, statement: str, args: Sequence[Any] = ()) -> None:
        with self._lock:
            self.statements.append(statement)
            self.arguments.append(tuple(args))

    def reset(self) -> None:
        with self._lock:
            self.statements.clear()
            self.arguments.clear()

    @property
    def total(self) -> int:
        return len(self.statements)

    @property
    def reads(self) -> int:
        return sum(1 for s in self.statements if SETUP_MARKER not in s)

    def read_statements(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The statements ``reads`` counts, each with its arguments."""
        with self._lock:
            pairs = list(zip(self.statements, self.arguments, strict=True))
        return [(s, args) for s, args in pairs if SETUP_MARKER not in s]


def pool_capacity(engine: AsyncEngine) -> int | None:
    """How many connections the engine's pool holds at most (None: no limit, as NullPool)."""
    pool = engine.sync_engine.pool
    if isinstance(pool, QueuePool):
        return pool.size() + max(0, pool._max_overflow)
    return None
