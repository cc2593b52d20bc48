"""The per-request viewer transaction.

The request boundary owns the transaction: ``open_transaction`` begins it and switches to the
viewer's role with their claims set *locally* (as PostgREST does) in one round trip, and
``end_transaction`` commits or rolls back. Store functions take the resulting ``Db`` and never
commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import QueuePool

from gateway.db.connection import Db, driver, send
from gateway.db.engine import autocommit, base_engine, listeners_of, pool_capacity
from gateway.db.failures import unavailable
from gateway.settings import Settings

log = logging.getLogger(__name__)

ROLES = ("anon", "authenticated", "service_role")


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


def statement_timeout_ms(settings: Settings, role: str) -> int:
    return {
        "anon": settings.statement_timeout_anon_ms,
        "authenticated": settings.statement_timeout_authenticated_ms,
    }.get(role, settings.statement_timeout_service_ms)


def viewer_settings(viewer: Viewer, settings: Settings) -> dict[str, str]:
    """The settings that make a transaction ``viewer``'s, by name: the role, the claims that
    row-level security reads, the role's statement timeout, and the environment (read by
    ``feature_flag_decision``: a flag may be limited to some environments). ``role`` comes
    first (``SETUP_MARKER``)."""
    if viewer.role not in ROLES:
        raise ValueError(f"unknown role {viewer.role!r}")
    return {
        "role": viewer.role,
        "request.jwt.claims": json.dumps(dict(viewer.claims)),
        "statement_timeout": str(statement_timeout_ms(settings, viewer.role)),
        "app.environment": settings.env,
    }


def literal(value: str) -> str:
    """``value`` as an escape-string literal, which reads the same whatever
    ``standard_conforming_strings`` is."""
    if "\x00" in value:
        raise ValueError("a text literal cannot hold NUL")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


# PostgreSQL plans a prepared statement again for every execution while that custom plan looks
# cheaper than its generic one, as it does for ``id = ANY($1)``; under row-level security the
# planning is most of the work (a by-id read: 0.15 ms of server CPU, 0.03 ms with its generic
# plan; a post's payload 0.45 ms, 0.08 ms). A transaction whose statements all go by key
# (``OperationPlan.keyed``) takes generic plans; listings and statistics, whose filters and page
# sizes decide their plan, keep the server's choice.
GENERIC_PLANS = "; SET LOCAL plan_cache_mode = force_generic_plan"


def set_local(viewer: Viewer, settings: Settings) -> str:
    """``viewer_settings`` as ``SET LOCAL`` commands in one simple query, the values as
    literals (a simple query takes no bind parameters). PostgreSQL runs a ``SET`` without
    parsing and planning a query: 0.02-0.03 ms less of its CPU per transaction than one
    ``SELECT set_config(…)`` of the same settings (measured side by side)."""
    return "; ".join(
        f"SET LOCAL {name} = {literal(value)}"
        for name, value in viewer_settings(viewer, settings).items()
    )


async def become(db: Db, viewer: Viewer, settings: Settings) -> None:
    """Switch the open transaction to ``viewer``; every setting is local to the transaction."""
    await db.send(set_local(viewer, settings))


def begin_as(viewer: Viewer, settings: Settings, generic_plans: bool = False) -> str:
    """BEGIN and ``set_local``'s settings as one simple query (one round trip); with
    ``generic_plans``, generic plans for the transaction's statements (``GENERIC_PLANS``).

    Remembered for the last viewers seen (a cached token's viewer is the same object on every
    request); the entry holds both objects, so their ids cannot be reused while it lives."""
    key = (id(viewer), id(settings), generic_plans)
    cached = _begin.get(key)
    if cached is not None and cached[0] is viewer and cached[1] is settings:
        return cached[2]
    sql = "BEGIN; " + set_local(viewer, settings)
    if generic_plans:
        sql += GENERIC_PLANS
    _begin[key] = (viewer, settings, sql)
    if len(_begin) > 1024:
        _begin.pop(next(iter(_begin)))
    return sql


_begin: dict[tuple[int, int, bool], tuple[Viewer, Settings, str]] = {}


def _attempts(engine: AsyncEngine) -> int:
    """Every pooled connection may have been dropped at once (a server restart)."""
    return (pool_capacity(engine) or 1) + 1


async def open_transaction(
    engine: AsyncEngine, viewer: Viewer, settings: Settings, generic_plans: bool = False
) -> AsyncConnection:
    """A connection with a transaction open as ``viewer``: one that a request transaction
    gave back (``take_connection``), else one from the pool.

    Statements go through SQLAlchemy as usual; the connection is in its AUTOCOMMIT mode, so
    SQLAlchemy sends no BEGIN or COMMIT of its own, and ``end_transaction`` ends the
    transaction. Three round trips per request (set-up, the statement, COMMIT) where
    SQLAlchemy's own transaction and ping took seven.

    Connections are not pinged before use: one the server dropped (a restart, an idle
    timeout) fails the set-up, which nothing depends on yet, and is replaced."""
    setup = begin_as(viewer, settings, generic_plans)
    for attempt in range(_attempts(engine), 0, -1):
        conn = await take_connection(engine)
        try:
            for listener in listeners_of(engine.sync_engine):
                listener(setup)
            await send(conn, setup)
        except BaseException:
            try:
                dropped = driver(conn).is_closed()
            except Exception:
                dropped = False
            await _discard(conn)
            if dropped and attempt > 1:
                continue
            raise
        return conn
    raise AssertionError("unreachable")  # pragma: no cover


async def end_transaction(conn: AsyncConnection, *, commit: bool) -> None:
    """COMMIT (or ROLLBACK) what ``open_transaction`` began and give the connection back
    (``give_back``). A COMMIT that fails, or that the server answers with ROLLBACK (the
    transaction had failed), is an error: nothing is reported written that was not. A ROLLBACK
    that cannot be sent (the connection broke, or a cancelled statement left it invalid)
    discards the connection, and with it the transaction, without an error of its own: the
    request is already failing for its own reason."""
    if conn.invalidated:
        await conn.close()
        if commit:
            raise RuntimeError("the transaction was not committed (its connection broke)")
        return
    try:
        status = await send(conn, "COMMIT" if commit else "ROLLBACK")
    except Exception as exc:
        await _discard(conn)
        if commit:
            raise
        if unavailable(exc):  # the server went away (a restart): one line, no traceback
            log.info("rollback failed, the connection was discarded: %s", type(exc).__name__)
        else:
            log.warning("rollback failed; the connection was discarded", exc_info=True)
        return
    except BaseException:
        await _discard(conn)
        raise
    await give_back(conn)
    if commit and status != "COMMIT":
        raise RuntimeError(f"the transaction was not committed (the server answered {status})")


async def _discard(conn: AsyncConnection) -> None:
    """Close ``conn`` for good: its transaction's state is unknown."""
    try:
        await conn.invalidate()
    finally:
        await conn.close()


# -- connections kept between request transactions --------------------------------------------
#
# Checking a connection out of SQLAlchemy's pool and back in (a Connection object, two calls
# through its greenlet bridge, the isolation level set and reset) cost ~45 µs of CPU per
# request, 8 % of a small query's. A connection whose transaction ended cleanly is kept for the
# next request instead, still checked out and in AUTOCOMMIT mode. Kept connections count as
# checked out of the pool, so:
# - every user of the engine takes them first (``take_connection``: request transactions,
#   ``pooled`` for the readiness and start-up checks, the LISTEN connection), and one given
#   back while another is waiting for the pool is checked in to wake it;
# - ``in_use`` leaves them out, ``release_idle`` gives them back to the pool;
# - one the server closed, one past the pool's recycle age and one of a pool since disposed of
#   are not taken or kept; disposing of the engine closes them.
# An engine serves one event loop (a driver connection belongs to the loop that opened it);
# the lists are per loop all the same, so that a second loop never takes the first one's.


@dataclass
class _Idle:
    by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[AsyncConnection]] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    waiting: int = 0  # callers checking a connection out of the pool, which may wait for one

    def of_loop(self) -> list[AsyncConnection]:
        loop = asyncio.get_running_loop()
        found = self.by_loop.get(loop)
        if found is None:
            found = self.by_loop[loop] = []
        return found


_idle: weakref.WeakKeyDictionary[Engine, _Idle] = weakref.WeakKeyDictionary()
OPENED = "mwplu_opened"  # when the driver connection was first taken (its record's info)
POOL = "mwplu_pool"  # the pool it came from (the engine's is replaced when it is disposed of)


def _idle_of(engine: AsyncEngine) -> _Idle:
    sync = base_engine(engine.sync_engine)
    found = _idle.get(sync)
    if found is None:
        found = _idle[sync] = _Idle()
        event.listen(sync, "engine_disposed", _close_idle)
    return found


async def take_connection(engine: AsyncEngine) -> AsyncConnection:
    """A kept connection of ``engine`` (the one given back last), else one from its pool."""
    idle = _idle_of(engine)
    kept = idle.of_loop()
    while kept:
        conn = kept.pop()
        if _usable(conn):
            return conn
        await _discard(conn)  # the server closed it (a restart): no round trip to find out
    idle.waiting += 1
    try:
        conn = await autocommit(engine).connect()
    finally:
        idle.waiting -= 1
    info = conn.sync_connection.info  # type: ignore[union-attr]
    info.setdefault(OPENED, time.monotonic())
    info[POOL] = conn.sync_engine.pool
    return conn


def _usable(conn: AsyncConnection) -> bool:
    sync = conn.sync_connection
    return (
        sync is not None
        and not conn.invalidated
        and sync.info.get(POOL) is conn.sync_engine.pool
        and not driver(conn).is_closed()
    )


async def give_back(conn: AsyncConnection) -> None:
    """Keep ``conn`` for the next user, unless another is waiting for the pool (checked in, it
    wakes them), the pool would have replaced it by now (``pool_recycle``) or it is not usable
    as it is."""
    sync = conn.sync_connection
    # SQLAlchemy's own transaction (begun with the first statement; nothing at the server in
    # AUTOCOMMIT mode) goes on to the next request as it is, while it is usable
    transaction = sync.get_transaction() if sync is not None else None
    recycle = getattr(conn.sync_engine.pool, "_recycle", -1)
    idle = _idle_of(conn.engine)
    if sync is not None and sync.info.get(POOL) is not conn.sync_engine.pool:
        await _discard(conn)  # its pool was disposed of: closed for good, not checked in there
    elif (
        idle.waiting
        or not _usable(conn)
        or not (transaction is None or transaction.is_active)
        or (recycle >= 0 and time.monotonic() - sync.info.get(OPENED, 0.0) > recycle)  # type: ignore[union-attr]
    ):
        await conn.close()
    else:
        idle.of_loop().append(conn)


def in_use(engine: AsyncEngine) -> int:
    """Connections checked out of ``engine``'s pool and not kept idle."""
    pool = engine.sync_engine.pool
    checked_out = pool.checkedout() if isinstance(pool, QueuePool) else 0
    found = _idle.get(base_engine(engine.sync_engine))
    return checked_out - (sum(map(len, found.by_loop.values())) if found else 0)


async def release_idle(engine: AsyncEngine) -> None:
    """Give the kept connections of this event loop back to the pool."""
    kept = _idle_of(engine).of_loop()
    while kept:
        await kept.pop().close()


@asynccontextmanager
async def pooled(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for statements outside a request transaction (readiness, start-up
    checks), in AUTOCOMMIT mode: a kept one when there is one, so that kept connections never
    make another user of the pool wait."""
    conn = await take_connection(engine)
    try:
        yield conn
    except BaseException:
        await _discard(conn)
        raise
    await give_back(conn)


def _close_idle(engine: Engine) -> None:
    """The engine was disposed of (this runs inside ``AsyncEngine.dispose``, on its loop):
    close the connections it kept. Another loop's cannot be awaited here: their driver
    connections are terminated."""
    found = _idle.pop(engine, None)
    if found is None:
        return
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:  # disposed of from synchronous code
        loop = None
    for owner, kept in list(found.by_loop.items()):
        for conn in kept:
            try:
                sync = conn.sync_connection
                if owner is loop and sync is not None:
                    sync.invalidate()
                    sync.close()
                else:
                    driver(conn).terminate()
            except Exception:
                log.debug("a kept connection could not be closed", exc_info=True)
        kept.clear()


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
