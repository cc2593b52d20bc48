"""The loader base: aiodataloader with a per-request dispatch scheduler.

aiodataloader dispatches a batch one loop iteration after its first key. graphql-core resolves
sibling fields through nested awaitables, so keys of one level of the query can arrive a few
iterations apart and a loader would fire several statements for one level. The ``Scheduler``
waits until the loop has gone ``SETTLE_TICKS`` iterations without a new key, then dispatches
every pending loader at once: one statement per loader per level of the query, whatever the
page size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from aiodataloader import DataLoader, dispatch_queue

from gateway.db import Db

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

SETTLE_TICKS = 3


class Scheduler:
    def __init__(self) -> None:
        self._pending: list[DataLoader[Any, Any]] = []
        self._armed = False
        self._idle = 0

    def enqueue(self, loader: DataLoader[Any, Any]) -> None:
        if loader not in self._pending:
            self._pending.append(loader)
        self._idle = 0
        if not self._armed:
            self._armed = True
            asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        if self._idle < SETTLE_TICKS:
            self._idle += 1
            asyncio.get_running_loop().call_soon(self._tick)
            return
        self._armed = False
        pending, self._pending = self._pending, []
        for loader in pending:
            if loader._queue:
                dispatch_queue(loader)


class Loader(DataLoader[K, V], Generic[K, V]):
    """A DataLoader whose batch function gets the request's ``Db`` and the keys."""

    def __init__(
        self,
        db: Callable[[], Awaitable[Db]],
        scheduler: Scheduler,
        fetch: Callable[[Db, Sequence[K]], Awaitable[list[V]]],
    ) -> None:
        super().__init__(batch_load_fn=self._batch, max_batch_size=None)
        self._db = db
        self._scheduler = scheduler
        self._fetch = fetch

    async def _batch(self, keys: Sequence[K]) -> list[V]:
        return await self._fetch(await self._db(), keys)

    def do_resolve_reject(self, key: K, future: asyncio.Future[V]) -> None:
        self._queue.append(_queued(key, future))
        self._scheduler.enqueue(self)


def _queued(key: Any, future: Any) -> Any:
    from aiodataloader import Loader as Queued

    return Queued(key=key, future=future)


def by_key(rows: Sequence[Any], keys: Sequence[K], column: str = "id") -> list[Any]:
    """``[row for each key]`` with ``None`` where no row has that key."""
    index = {row[column]: row for row in rows}
    return [index.get(k) for k in keys]


def grouped(rows: Sequence[Any], keys: Sequence[K], column: str) -> list[list[Any]]:
    """``[rows of each key]`` in row order, an empty list where a key has none."""
    groups: dict[Any, list[Any]] = {}
    for row in rows:
        groups.setdefault(row[column], []).append(row)
    return [groups.get(k, []) for k in keys]
