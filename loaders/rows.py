"""RowsById: rows of one object type by id, with the columns an operation selects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from uuid import UUID

from aiodataloader import DataLoader

from gateway.db import Db
from gateway.store import Record, select
from gateway.store.graph import Entity


class RowsById(DataLoader[tuple[UUID, ...], None]):
    """A key is a batch of ids (the ids of one type that one step of the engine needs): the
    batches asked for in the same tick are read in one statement, and a batch is one future,
    not one per id (a response of a thousand rows would otherwise schedule a thousand). The
    rows land in ``found`` (the request's rows of this type, by id); an id not visible to the
    viewer (or gone) stays absent."""

    def __init__(
        self,
        db: Callable[[], Awaitable[Db]],
        entity: Entity,
        columns: Sequence[str],
        found: MutableMapping[UUID, Record],
    ) -> None:
        # no cache: ``found`` is the request's cache, by id
        super().__init__(max_batch_size=None, cache=False)
        self.db = db
        self.entity = entity
        self.columns = columns
        self.found = found

    async def batch_load_fn(self, batches: Sequence[tuple[UUID, ...]]) -> list[None]:
        found = self.found
        ids = list(dict.fromkeys(k for batch in batches for k in batch if k not in found))
        if ids:
            for row in await select.by_ids(await self.db(), self.entity, self.columns, ids):
                found[row[0]] = row
        return [None] * len(batches)
