"""Read replicas (DESIGN §6, ``DATABASE_REPLICA_URLS``).

The request context (``gateway.context``) opens a query's transaction on a usable replica, and
everything else — mutations, subscriptions, a client's queries within the read-your-writes
window (``gateway.db.read_your_writes``), queries when no replica is usable — on the primary.
A replica that cannot open a transaction is skipped at once, for another or the primary:
nothing of the request has run yet.

Each worker checks its replicas every ``GATEWAY_REPLICA_CHECK_S``, in the background, on
connections of their own (one per replica, one to the primary for its WAL position), never per
request, and routes on what it last saw. A replica is usable when its last check found it
reachable, replaying (a promoted replica no longer follows the primary) and at most
``GATEWAY_REPLICA_MAX_LAG_S`` behind — and only while that check is recent enough that a
client's write older than the read-your-writes window must be on it:
seconds since the check + lag then <= ``GATEWAY_READ_YOUR_WRITES_S``.

Lag: 0 when the replica had replayed the primary's WAL up to where the primary had flushed it
just before (up to what it had received, when the primary cannot be asked); otherwise the age
of the last transaction it replayed (``pg_last_xact_replay_timestamp()``: it holds every
commit up to that one), the replica's clock against the primary's commit time. A replica
replaying WAL with no commit in it (a checkpoint) may be seen behind for a moment: skipped
for a check, never trusted too long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import weakref
from collections import Counter as Tally
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import urls
from gateway.db.engine import create_engine
from gateway.settings import Replicas, Settings

log = logging.getLogger(__name__)

PRIMARY = "primary"  # the target of a transaction not on a replica (``ReplicaSet.served``)

PRIMARY_POSITION = text("SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), '0/0')")
REPLICA_STATE = text(
    "SELECT pg_is_in_recovery() AS replaying,"
    " pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0') AS replayed,"
    " pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0') AS received,"
    " extract(epoch FROM clock_timestamp() - coalesce(pg_last_xact_replay_timestamp(),"
    " pg_postmaster_start_time())) AS since_replay"
)


@dataclass
class Replica:
    name: str  # host:port, for logs, /readyz and metrics (never the credentials)
    engine: AsyncEngine  # the queries' pool
    monitor: AsyncEngine  # one connection, for the checks
    status: str = "unchecked"  # then "ok", "lagging", "down" or "not a replica"
    lag_s: float | None = None
    reason: str | None = None
    checked_at: float = -math.inf  # time.monotonic() just before the check that set status

    def usable(self, now: float, settings: Replicas) -> bool:
        return (
            self.status == "ok"
            and self.lag_s is not None
            and now - self.checked_at + self.lag_s <= settings.read_your_writes_s
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "lagSeconds": None if self.lag_s is None else round(self.lag_s, 3),
            **({"reason": self.reason} if self.reason else {}),
        }


class ReplicaSet:
    """The replicas of one primary engine, and what this worker last saw of them."""

    def __init__(
        self,
        replicas: Sequence[Replica],
        settings: Replicas,
        primary_monitor: AsyncEngine | None = None,
    ) -> None:
        self.replicas = list(replicas)
        self.settings = settings
        self.primary_monitor = primary_monitor
        self.served: Tally[str] = Tally()  # transactions opened, per target (metrics, tests)
        self._turn = 0
        self._watch: asyncio.Task[None] | None = None
        self._closed = False  # disposed: no check loop starts again

    @classmethod
    def create(cls, settings: Settings, primary_url: str | URL | None) -> ReplicaSet:
        """Engines for ``settings.replicas.urls``; ``primary_url`` (None: not asked) for the
        primary's WAL position."""
        replicas: list[Replica] = []
        for url in settings.replicas.urls:
            name = _name(url)
            if any(replica.name == name for replica in replicas):
                name += f"#{len(replicas) + 1}"
            replicas.append(Replica(
                name,
                create_engine(url, settings),
                create_engine(url, settings, pool_size=1),
            ))
        monitor = None if primary_url is None else create_engine(primary_url, settings, pool_size=1)
        return cls(replicas, settings.replicas, monitor)

    def choose(self) -> Replica | None:
        """A usable replica, each in turn; None when none is."""
        self.start()
        now = time.monotonic()
        usable = [r for r in self.replicas if r.usable(now, self.settings)]
        if not usable:
            return None
        self._turn += 1
        return usable[self._turn % len(usable)]

    def failed(self, replica: Replica, exc: BaseException) -> None:
        """``replica`` could not open a transaction: skipped until a check finds it well."""
        self._set(replica, "down", None, _reason(exc), time.monotonic())

    def start(self) -> None:
        """Check the replicas every ``check_s`` from now on, in the background."""
        if self._closed:
            return  # a request outliving the app's shutdown starts nothing
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(
                self._watch_loop(), name="mwplu replica checks"
            )

    async def dispose(self) -> None:
        self._closed = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        for replica in self.replicas:
            await replica.engine.dispose()
            await replica.monitor.dispose()
        if self.primary_monitor is not None:
            await self.primary_monitor.dispose()

    async def check(self) -> None:
        """Check every replica now, together, each within ``check_s``."""
        checked_at = time.monotonic()
        position = await self._primary_position()
        await asyncio.gather(*(self._check(r, position, checked_at) for r in self.replicas))

    async def _watch_loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.check()
            except Exception:  # pragma: no cover - _check records its own failures
                log.exception("replica check failed")
            await asyncio.sleep(max(0.0, self.settings.check_s - (time.monotonic() - started)))

    async def _primary_position(self) -> Decimal | None:
        if self.primary_monitor is None:
            return None
        try:
            async with asyncio.timeout(self.settings.check_s):
                async with self.primary_monitor.connect() as conn:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    position: Decimal | None = (await conn.execute(PRIMARY_POSITION)).scalar()
                    return position
        except Exception as exc:  # the primary down: replicas judged by what they received
            log.debug("primary WAL position unavailable: %r", exc)
            return None

    async def _check(self, replica: Replica, position: Decimal | None, checked_at: float) -> None:
        try:
            async with asyncio.timeout(self.settings.check_s):
                async with replica.monitor.connect() as conn:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    row = (await conn.execute(REPLICA_STATE)).one()
        except Exception as exc:
            self._set(replica, "down", None, _reason(exc), checked_at)
            return
        if not row.replaying:
            self._set(replica, "not a replica", None, "not in recovery: it does not follow "
                      "the primary", checked_at)
            return
        # Without the primary's position the replica cannot be shown caught up (one whose
        # replication stalled has replayed all it received): its lag is then the time since
        # its last replayed commit, an upper bound, and a quiet primary only costs queries
        # on the primary.
        behind = position is None or row.replayed is None or row.replayed < position
        lag = max(0.0, float(row.since_replay or 0.0)) if behind else 0.0
        status = "lagging" if lag > self.settings.max_lag_s else "ok"
        self._set(replica, status, lag, None, checked_at)

    def _set(
        self, replica: Replica, status: str, lag: float | None, reason: str | None,
        checked_at: float,
    ) -> None:
        if status != replica.status:
            if status == "ok":
                log.info("replica %s serves queries (lag %.2fs)", replica.name, lag)
            else:
                detail = reason or f"{lag:.2f}s behind, more than {self.settings.max_lag_s:g}s"
                log.warning("replica %s skipped (%s): %s", replica.name, status, detail)
        replica.status, replica.lag_s, replica.reason = status, lag, reason
        replica.checked_at = checked_at


def _name(url: str) -> str:
    parsed = make_url(url)
    args = urls.connect_args(url)
    host = args.get("host") or parsed.host or "localhost"
    return f"{host}:{args.get('port') or parsed.port or 5432}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:200] if first else type(exc).__name__


# The replicas of each primary engine: the request context finds them from the engine it was
# given (the lifespan attaches them), as it finds the engine's connection gate.
_sets: weakref.WeakKeyDictionary[AsyncEngine, ReplicaSet] = weakref.WeakKeyDictionary()


def attach(primary: AsyncEngine, replicas: ReplicaSet) -> None:
    _sets[primary] = replicas


def detach(primary: AsyncEngine) -> None:
    _sets.pop(primary, None)


def replicas_of(primary: AsyncEngine) -> ReplicaSet | None:
    return _sets.get(primary)


@contextlib.asynccontextmanager
async def attached(primary: AsyncEngine, settings: Settings) -> AsyncIterator[ReplicaSet | None]:
    """``settings.replicas`` attached to ``primary`` for the duration (the app's lifespan):
    checked once before, then every ``check_s``, disposed after. None without replicas."""
    if not settings.replicas.urls or replicas_of(primary) is not None:
        yield replicas_of(primary)
        return
    replicas = ReplicaSet.create(settings, settings.database_url)
    attach(primary, replicas)
    try:
        await replicas.check()
        replicas.start()
        yield replicas
    finally:
        detach(primary)
        await replicas.dispose()
