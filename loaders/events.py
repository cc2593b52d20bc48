"""ChatEventById."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from gateway.db import Db
from gateway.store import Row, analytics
from loaders.base import by_key


async def ChatEventById(db: Db, keys: Sequence[UUID]) -> list[Row | None]:
    return by_key(await analytics.by_ids(db, keys), keys)
