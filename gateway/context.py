"""The request context: who is asking and their lazily opened transaction.

The transaction opens on the first statement, so a request refused before execution (limits,
validation, an anonymous viewer asking for private data) sends no SQL at all.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import QueuePool

from gateway.db import (
    Db,
    Viewer,
    end_deferred,
    end_transaction,
    open_transaction,
    pool_capacity,
)
from gateway.db.read_your_writes import current_window
from gateway.db.replicas import PRIMARY, replicas_of
from gateway.realtime import Hub
from gateway.settings import Settings
from gateway.store import shared


class ConnectionGate:
    """First come, first served turns at the pool's connections.

    SQLAlchemy's async pool lets a request that arrives just as a connection comes back take it
    ahead of the requests already waiting (the waiter it woke finds the queue empty again and
    waits at the back). Under load a few requests lost that race again and again: R2's p99 was
    1.7 times its median. A semaphore of the pool's size, whose waiters are served in order, hands
    out the turns instead; the pool then never has a waiter."""

    def __init__(self, size: int, timeout: float) -> None:
        self.size = size
        self.timeout = timeout
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._by_loop = weakref.WeakKeyDictionary()

    def semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        semaphore = self._by_loop.get(loop)
        if semaphore is None:
            semaphore = self._by_loop[loop] = asyncio.Semaphore(self.size)
        return semaphore

    async def turn(self) -> Callable[[], None]:
        """Wait for a turn (as long as the pool would have, then its error); returns what
        gives it back."""
        semaphore = self.semaphore()
        if not semaphore.locked():
            # a turn is free: taken at once, without arming a timeout (``wait_for`` ran even
            # that as a task of its own: a tenth of a small query's CPU)
            await semaphore.acquire()
            return semaphore.release
        try:
            await asyncio.wait_for(semaphore.acquire(), self.timeout)
        except TimeoutError:
            raise PoolTimeoutError(
                f"no database connection free within {self.timeout:g}s "
                f"(pool of {self.size})"
            ) from None
        return semaphore.release


UNLIMITED = 2**31
REPLICA_OPEN_S = 2.0  # at most this long to open a query's transaction on a replica
_gates: weakref.WeakKeyDictionary[AsyncEngine, ConnectionGate] = weakref.WeakKeyDictionary()


def gate_of(engine: AsyncEngine) -> ConnectionGate:
    """The engine's gate, sized to its pool (pool_size + max_overflow)."""
    gate = _gates.get(engine)
    if gate is None:
        capacity = pool_capacity(engine)
        if capacity is None:  # a pool without a limit (NullPool): nothing to take turns at
            size, timeout = UNLIMITED, float(UNLIMITED)
        else:
            size, timeout = capacity, cast(QueuePool, engine.sync_engine.pool).timeout()
        gate = _gates[engine] = ConnectionGate(max(1, size), timeout)
    return gate


@dataclass
class Context:
    settings: Settings
    engine: AsyncEngine
    viewer: Viewer
    request_id: str
    _conn: AsyncConnection | None = field(default=None, init=False)
    _db: Db | None = field(default=None, init=False)
    _open_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _is_admin: bool | None = field(default=None, init=False)
    _finished: bool = field(default=False, init=False)
    # A mutation ran: a COMMIT that fails leaves its outcome unknown to the client.
    wrote: bool = field(default=False, init=False)
    # For the request's log line and metrics: what it was, what it read and wrote per store
    # (``("messages", "v1")``…), and the statements it sent, set-up included.
    operation_type: str = field(default="unknown", init=False)
    operation_name: str | None = field(default=None, init=False)
    reads: Tally[tuple[str, str]] = field(default_factory=Tally, init=False)
    writes: Tally[tuple[str, str]] = field(default_factory=Tally, init=False)
    statements: int = field(default=0, init=False)
    committed: bool = field(default=False, init=False)
    # where the transaction runs: the primary, or a replica's name (gateway.db.replicas)
    target: str = field(default=PRIMARY, init=False)
    # the operation's statements all read or write by key: generic plans (``begin_as``)
    generic_plans: bool = field(default=False, init=False)
    # gives the connection's turn back (ConnectionGate), once it is back in the pool
    _release: Callable[[], None] | None = field(default=None, init=False)

    async def db(self) -> Db:
        """The request's transaction, opened (as the viewer) on first use."""
        if self._db is not None:
            return self._db
        async with self._open_lock:
            if self._finished:
                # graphql-core leaves sibling resolvers running after a field fails; once the
                # response is decided they must not open a second transaction.
                raise RuntimeError("the request's transaction is finished")
            if self._db is None:
                conn, release = await self._open()
                self._conn, self._db, self._release = conn, Db(conn), release
        return self._db

    async def _open(self) -> tuple[AsyncConnection, Callable[[], None]]:
        """A query on a usable replica (DESIGN §6) unless the client wrote within the
        read-your-writes window; everything else, and a query no replica can take, on the
        primary. A replica that fails to open is skipped: nothing of the request ran yet."""
        replicas = replicas_of(self.engine)
        window = current_window.get()
        if (
            replicas is not None
            and self.operation_type == "query"
            and not (window is not None and window.recent_for(self.viewer, self.settings))
        ):
            while (replica := replicas.choose()) is not None:
                try:
                    # A replica that hangs (a partition) is given up quickly, not after the
                    # driver's own timeouts (15-60 s): the primary can take the query.
                    async with asyncio.timeout(REPLICA_OPEN_S):
                        opened = await _begin(replica.engine, self)
                except Exception as exc:
                    replicas.failed(replica, exc)
                    continue
                self.target = replica.name
                replicas.served[replica.name] += 1
                return opened
        opened = await _begin(self.engine, self)
        if replicas is not None:
            replicas.served[PRIMARY] += 1
        return opened

    @property
    def used_database(self) -> bool:
        return self._conn is not None

    async def finish(self, *, commit: bool) -> None:
        """Commit or roll back and return the connection to the pool; shielded so that a
        cancelled request still closes its transaction."""
        if self._open_lock.locked():
            # A sibling field is opening the transaction: wait for it even if the request is
            # cancelled meanwhile, or the connection it opens would stay checked out, its
            # turn at the pool never given back. (Uncontended, the lock is taken at once.)
            await asyncio.shield(self._finish(commit))
            return
        await self._finish(commit)

    async def _finish(self, commit: bool) -> None:
        async with self._open_lock:
            self._finished = True
            conn, db, self._conn, self._db = self._conn, self._db, None, None
            release, self._release = self._release, None
        if conn is None or db is None or release is None:
            return
        self.statements = 1 + db.statements  # the set-up, then what the request sent
        window = current_window.get()
        if commit and self.wrote and window is not None:
            # Even if the COMMIT's outcome turns out unknown: the write may have been made.
            window.written_by = self.viewer
        if not _closed_at_once(conn, db, commit, release):
            await asyncio.shield(_close(conn, db, commit, release))
        self.committed = commit

    async def is_admin(self) -> bool:
        """``profiles.is_admin`` of the viewer (never a token claim)."""
        if self._is_admin is None:
            self._is_admin = self.viewer.role == "authenticated" and await shared.viewer_is_admin(
                await self.db()
            )
        return self._is_admin

    @property
    def is_service(self) -> bool:
        return self.viewer.role == "service_role"

    @property
    def is_anonymous(self) -> bool:
        return self.viewer.role == "anon"


async def _begin(
    engine: AsyncEngine, context: Context
) -> tuple[AsyncConnection, Callable[[], None]]:
    """The context's transaction on ``engine`` as its viewer (read-only for a query), once the
    engine's gate gives a turn; and what gives the turn back."""
    release = await gate_of(engine).turn()
    try:
        conn = await open_transaction(
            engine,
            context.viewer,
            context.settings,
            context.generic_plans,
            read_only=context.operation_type == "query",
        )
        return conn, release
    except BaseException:
        release()
        raise


def _closed_at_once(
    conn: AsyncConnection, db: Db, commit: bool, release: Callable[[], None]
) -> bool:
    """``_close`` without awaiting anything, when that is all it would do (a read whose
    COMMIT waits for the connection's next user, with no statement running): no task to
    shield it. False, with nothing done but ``db`` held, otherwise."""
    if not (commit and db.hold_now()):
        return False
    try:
        if not end_deferred(conn):
            return False
    except BaseException:
        release()
        raise
    release()
    return True


async def _close(
    conn: AsyncConnection, db: Db, commit: bool, release: Callable[[], None]
) -> None:
    # Wait for a statement still running for an abandoned sibling resolver: one connection
    # runs one statement at a time, and the Db lock serialises them.
    await db.hold()
    try:
        await end_transaction(conn, commit=commit)
    finally:
        release()  # the connection is back in the pool (or discarded): its turn is free


@dataclass
class Subscriber:
    """The context of a subscription connection: a WebSocket (its viewer set by
    ``connection_init`` or the upgrade request's header) or one SSE request. Each event is read
    as the viewer in a transaction of its own (``event_context``)."""

    settings: Settings
    engine: AsyncEngine
    hub: Hub
    viewer: Viewer
    request_id: str
    # Closes the transport (a slow consumer: 4429); set by the transport.
    close: Callable[[int, str], None] | None = None
    # graphql-transport-ws: the connection_init payload (strawberry sets it), and the upgrade
    # request's Authorization header (used when the payload has none).
    connection_params: dict[str, object] | None = None
    authorization: str | None = None
    subscriptions: int = 0

    def event_context(self) -> Context:
        return Context(settings=self.settings, engine=self.engine, viewer=self.viewer,
                       request_id=self.request_id)

    def overflowed(self) -> None:
        if self.close is not None:
            limit = self.settings.realtime.queue_size
            self.close(4429, f"slow consumer: more than {limit} events waiting")
