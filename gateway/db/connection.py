"""One request's connection (``Db``): statements through SQLAlchemy or straight to the driver,
serialised, with the driver's errors raised as SQLAlchemy's."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy.engine import Result
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from gateway.db.engine import announce
from gateway.tracing import statement_span


class Db:
    """One request's connection. Statements are serialised: aiodataloader may dispatch several
    loaders in the same tick, and one connection runs one statement at a time."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._lock = asyncio.Lock()
        self._closed = False
        self.statements = 0  # sent through this Db (the request log line and metrics read it)

    async def hold(self) -> None:
        """Wait until no statement runs, then refuse every further one."""
        await self._lock.acquire()
        self._closed = True
        self._lock.release()

    def hold_now(self) -> bool:
        """``hold`` when no statement runs (nothing to wait for); False when one does."""
        if self._lock.locked():
            return False
        self._closed = True
        return True

    async def execute(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Result[Any]:
        async with self._lock:
            self._admit()
            with statement_span(statement):
                return await self.conn.execute(statement, params)

    async def send(self, sql: str) -> str:
        """``sql`` as a simple query: several commands, no parameters, no rows back."""
        async with self._lock:
            self._admit(sql)
            return await send(self.conn, sql)

    def _admit(self, driver_sql: str | None = None, args: Sequence[Any] = ()) -> None:
        """With the lock held: refuse a statement once the transaction is finished, else count
        it; one sent to the driver directly is also told to the statement listeners (SQLAlchemy
        tells them of its own)."""
        if self._closed:
            raise RuntimeError("the request's transaction is finished")
        if driver_sql is not None:
            announce(self.conn.sync_engine, driver_sql, args)
        self.statements += 1

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
            self._admit(query, args)
            raw = driver(self.conn)
            with statement_span(query):
                try:
                    return list(await raw.fetch(query, *args))
                except Exception as exc:
                    raise dbapi_error(self.conn, raw, query, exc) from exc

    async def value(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of ``sql``'s first row (None without a row), through ``fetch``: a
        count or a flag without SQLAlchemy's statement work (~105 µs of CPU less a statement)."""
        rows = await self.fetch(sql, params)
        return rows[0][0] if rows else None


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


def driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under ``conn``."""
    return conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]


async def send(conn: AsyncConnection, sql: str) -> str:
    """``sql`` as a simple query on the driver's connection; its errors are raised as
    SQLAlchemy raises a statement's (a ``DBAPIError``, with ``connection_invalidated`` when the
    connection broke), so that callers handle one kind of error whichever path sent it."""
    raw = driver(conn)
    try:
        return str(await raw.execute(sql))
    except Exception as exc:
        raise dbapi_error(conn, raw, sql, exc) from exc


def dbapi_error(
    conn: AsyncConnection, raw: Any, sql: str, exc: Exception
) -> StatementError:
    return DBAPIError.instance(
        sql,
        None,
        exc,
        Exception,
        connection_invalidated=raw.is_closed(),
        dialect=conn.dialect,
    )
