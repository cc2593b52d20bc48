"""Connections kept between request transactions.

Checking a connection out of SQLAlchemy's pool and back in (a Connection object, two calls
through its greenlet bridge, the isolation level set and reset) cost ~45 µs of CPU per
request, 8 % of a small query's. A connection whose transaction ended cleanly is kept for the
next request instead, still checked out and in AUTOCOMMIT mode. Kept connections count as
checked out of the pool, so:

- every user of the engine takes them first (``take_connection``: request transactions,
  ``pooled`` for the readiness and start-up checks, the LISTEN connection), and one given
  back while another is waiting for the pool is checked in to wake it;
- ``in_use`` leaves them out, ``release_idle`` gives them back to the pool;
- one the server closed, one past the pool's recycle age and one of a pool since disposed of
  are not taken or kept; disposing of the engine closes them.

An engine serves one event loop (a driver connection belongs to the loop that opened it); the
lists are per loop all the same, so that a second loop never takes the first one's.

A read-only transaction (a query's: ``BEGIN READ ONLY``) has nothing to commit, so its COMMIT
need not cost a round trip of its own (~0.05 ms of the gateway's CPU and ~0.03 ms of the
server's): its connection is kept with the transaction still open (``keep_unended``), and

- the next request transaction on it ends it in its own set-up's round trip ("COMMIT; BEGIN
  …": one simple query, so the transaction is ended before the next one's settings apply;
  ``gateway.db.transactions.open_transaction``);
- any other user has it committed first (``take_connection``);
- one that nobody takes within ``END_AFTER_S`` is committed by its loop's sweep, so that a
  connection is never left idle in a transaction (holding its locks) for longer;
- one that goes back to the pool is committed first, or closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import QueuePool

from gateway.db.connection import driver, send
from gateway.db.engine import autocommit, base_engine

log = logging.getLogger(__name__)


async def discard(conn: AsyncConnection) -> None:
    """Close ``conn`` for good: its transaction's state is unknown. One already closed (its
    engine disposed of meanwhile) has nothing left to close."""
    sync = conn.sync_connection
    if sync is not None and sync.closed:
        return
    try:
        await conn.invalidate()
    finally:
        await conn.close()


class _Kept(list[AsyncConnection]):
    """The connections kept on one event loop, the last one given back at the end."""

    sweep: asyncio.TimerHandle | None = None
    sweeping: asyncio.Task[None] | None = None


@dataclass
class _Idle:
    by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Kept] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    waiting: int = 0  # callers checking a connection out of the pool, which may wait for one

    def of_loop(self) -> _Kept:
        loop = asyncio.get_running_loop()
        found = self.by_loop.get(loop)
        if found is None:
            found = self.by_loop[loop] = _Kept()
        return found


_idle: weakref.WeakKeyDictionary[Engine, _Idle] = weakref.WeakKeyDictionary()
OPENED = "mwplu_opened"  # when the driver connection was first taken (its record's info)
POOL = "mwplu_pool"  # the pool it came from (the engine's is replaced when it is disposed of)
UNENDED = "mwplu_unended"  # kept with its read-only transaction still open
END_AFTER_S = 0.02


def _idle_of(engine: AsyncEngine) -> _Idle:
    sync = base_engine(engine.sync_engine)
    found = _idle.get(sync)
    if found is None:
        found = _idle[sync] = _Idle()
        event.listen(sync, "engine_disposed", _close_idle)
    return found


async def take_connection(engine: AsyncEngine, *, unended: bool = False) -> AsyncConnection:
    """A kept connection of ``engine`` (the one given back last), else one from its pool.
    Its transaction is ended, unless the caller ends it (``unended``: ``open_transaction``)."""
    idle = _idle_of(engine)
    kept = idle.of_loop()
    while kept:
        conn = kept.pop()
        if await _ready(conn, end=not unended):
            return conn
    idle.waiting += 1
    try:
        conn = await autocommit(engine).connect()
    finally:
        idle.waiting -= 1
    info = conn.sync_connection.info  # type: ignore[union-attr]
    info.setdefault(OPENED, time.monotonic())
    info[POOL] = conn.sync_engine.pool
    return conn


async def _ready(conn: AsyncConnection, *, end: bool = True) -> bool:
    """Whether a kept ``conn`` can serve again: usable (one the server closed, in a restart, is
    found without a round trip), and with its read-only transaction ended unless the caller
    ends it (``end``). One that cannot is discarded."""
    if not _usable(conn):
        await discard(conn)
        return False
    return not end or await _ended(conn)


async def _ended(conn: AsyncConnection) -> bool:
    """End ``conn``'s read-only transaction if it is kept with one open (``UNENDED``). False,
    with the connection discarded, if that fails."""
    if conn.sync_connection.info.pop(UNENDED, None) is None:  # type: ignore[union-attr]
        return True
    try:
        await send(conn, "COMMIT")
    except Exception as exc:
        await discard(conn)
        log.info("a kept read-only transaction could not be ended, its connection was "
                 "discarded: %s", type(exc).__name__)
        return False
    except BaseException:
        await discard(conn)
        raise
    return True


def _usable(conn: AsyncConnection) -> bool:
    sync = conn.sync_connection
    return (
        sync is not None
        and not sync.closed  # (its engine disposed of, under a sweep)
        and not conn.invalidated
        and sync.info.get(POOL) is conn.sync_engine.pool
        and not driver(conn).is_closed()
    )


def _verdict(conn: AsyncConnection, *, ended: bool = True) -> object:
    """What ``give_back`` does with ``conn``: ``_keep`` it for the next user; ``_check_in``
    when another is waiting for the pool (only a check-in wakes them), the pool would have
    replaced it by now (``pool_recycle``) or it is not usable as it is; ``_close`` when its
    pool was disposed of (closed for good, not checked in there); ``_open`` when it is still
    in a transaction though ``ended`` (its user did not end it: never passed on). ``ended``
    is False when asked before the transaction ends (``keepable``)."""
    sync = conn.sync_connection
    if sync is not None and not sync.closed and sync.info.get(POOL) is not conn.sync_engine.pool:
        return _close
    if not _usable(conn):
        return _check_in
    if ended and (UNENDED in sync.info or driver(conn).is_in_transaction()):  # type: ignore[union-attr]
        return _open
    # SQLAlchemy's own transaction (begun with the first statement; nothing at the server in
    # AUTOCOMMIT mode) goes on to the next request as it is, while it is usable
    transaction = sync.get_transaction()  # type: ignore[union-attr]
    recycle = getattr(conn.sync_engine.pool, "_recycle", -1)
    if (
        _idle_of(conn.engine).waiting
        or not (transaction is None or transaction.is_active)
        or (recycle >= 0 and time.monotonic() - sync.info.get(OPENED, 0.0) > recycle)  # type: ignore[union-attr]
    ):
        return _check_in
    return _keep


_keep, _check_in, _close, _open = object(), object(), object(), object()


def keepable(conn: AsyncConnection) -> bool:
    """Whether ``give_back`` would keep ``conn`` once its transaction has ended."""
    return _verdict(conn, ended=False) is _keep


async def give_back(conn: AsyncConnection) -> None:
    """Keep ``conn`` for the next user, check it in or close it (``_verdict``). Its
    transaction has ended."""
    verdict = _verdict(conn)
    if verdict is _keep:
        _idle_of(conn.engine).of_loop().append(conn)
    elif verdict is _check_in:
        await conn.close()
    else:
        if verdict is _open:
            log.warning("a connection was given back in a transaction; it was closed")
        await discard(conn)


def keep_unended(conn: AsyncConnection) -> None:
    """Keep ``conn`` with its read-only transaction open, to be ended by its next user or by
    the sweep (``UNENDED``)."""
    conn.sync_connection.info[UNENDED] = time.monotonic()  # type: ignore[union-attr]
    kept = _idle_of(conn.engine).of_loop()
    kept.append(conn)
    _arm(kept, END_AFTER_S)


def _unended_since(conn: AsyncConnection) -> float | None:
    sync = conn.sync_connection
    if sync is None or sync.closed or sync.invalidated:
        return None
    return sync.info.get(UNENDED)


def _arm(kept: _Kept, delay: float) -> None:
    """Sweep ``kept`` in ``delay`` seconds, in a context of its own (not the request's that
    arms it: its log lines and spans are nobody's request)."""
    if kept.sweep is None and kept.sweeping is None:
        kept.sweep = asyncio.get_running_loop().call_later(
            delay, _start_sweep, kept, context=contextvars.Context()
        )


def _start_sweep(kept: _Kept) -> None:
    kept.sweep = None
    kept.sweeping = asyncio.get_running_loop().create_task(_sweep(kept))


async def _sweep(kept: _Kept) -> None:
    """End the read-only transactions of the connections kept for ``END_AFTER_S`` or longer
    with one open; come back for the others when they are due (also after a cancellation)."""
    try:
        due = time.monotonic() - END_AFTER_S
        for conn in [c for c in kept if (since := _unended_since(c)) is not None and since <= due]:
            if conn not in kept:
                continue  # taken meanwhile
            kept.remove(conn)
            try:
                if await _ready(conn):
                    await give_back(conn)
            except BaseException as exc:
                # also cancelled (the loop closing): out of the list, it is closed here or
                # left to the collector still checked out
                if isinstance(exc, Exception):
                    log.warning("a kept connection could not be given back", exc_info=True)
                with contextlib.suppress(Exception):
                    await discard(conn)
                if not isinstance(exc, Exception):
                    raise
    finally:
        kept.sweeping = None
        pending = [since for c in kept if (since := _unended_since(c)) is not None]
        if pending:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                _arm(kept, max(0.0, min(pending) + END_AFTER_S - time.monotonic()))


def in_use(engine: AsyncEngine) -> int:
    """Connections checked out of ``engine``'s pool and not kept idle."""
    pool = engine.sync_engine.pool
    checked_out = pool.checkedout() if isinstance(pool, QueuePool) else 0
    found = _idle.get(base_engine(engine.sync_engine))
    return checked_out - (sum(map(len, found.by_loop.values())) if found else 0)


async def release_idle(engine: AsyncEngine) -> None:
    """Give the kept connections of this event loop back to the pool (after a sweep under
    way, which may keep a connection again)."""
    kept = _idle_of(engine).of_loop()
    if kept.sweeping is not None:
        await asyncio.wait([kept.sweeping])
    if kept.sweep is not None:
        kept.sweep.cancel()
        kept.sweep = None
    while kept:
        conn = kept.pop()
        if await _ready(conn):
            await conn.close()


@asynccontextmanager
async def pooled(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for statements outside a request transaction (readiness, start-up
    checks), in AUTOCOMMIT mode: a kept one when there is one, so that kept connections never
    make another user of the pool wait."""
    conn = await take_connection(engine)
    try:
        yield conn
    except BaseException:
        await discard(conn)
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
        # Emptied first: closing one awaits (its loop runs meanwhile), and a sweep under way
        # removes the connections it ends from this list; iterated in place, one that moved
        # into a removed one's slot was skipped and then dropped by clear(), still checked out.
        conns = list(kept)
        kept.clear()
        for conn in conns:
            try:
                sync = conn.sync_connection
                if owner is loop and sync is not None:
                    sync.invalidate()
                    sync.close()
                else:
                    driver(conn).terminate()
            except Exception:
                log.debug("a kept connection could not be closed", exc_info=True)
