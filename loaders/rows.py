"""RowsById: rows of one object type by id, with the columns an operation selects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from uuid import UUID

from aiodataloader import DataLoader

from gateway.db import Db
from gateway.store import Record, select
from gateway.store.graph import Entity


class RowsById(DataLoader[UUID, Record | None]):
    """Keys are ids; a row not visible to the viewer (or gone) is ``None``. Every row read is
    also put in ``found`` (the request's rows of this type, by id)."""

    def __init__(
        self,
        db: Callable[[], Awaitable[Db]],
        entity: Entity,
        columns: Sequence[str],
        found: MutableMapping[UUID, Record],
    ) -> None:
        super().__init__(max_batch_size=None)
        self.db = db
        self.entity = entity
        self.columns = columns
        self.found = found

    async def batch_load_fn(self, keys: Sequence[UUID]) -> list[Any]:
        found = self.found
        for row in await select.by_ids(await self.db(), self.entity, self.columns, keys):
            found[row[0]] = row
        return [found.get(k) for k in keys]
