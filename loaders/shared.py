"""Fetch helper shared by the reference-data loaders (one table, keyed by id)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

from gateway.db import Db
from gateway.store import Row, shared
from loaders.base import by_key

Fetch = Callable[[Db, Sequence[UUID]], Awaitable[list[Row | None]]]


def rows_by_id(table: str) -> Fetch:
    async def fetch(db: Db, keys: Sequence[UUID]) -> list[Row | None]:
        return by_key(await shared.by_ids(db, table, keys), keys)

    return fetch
