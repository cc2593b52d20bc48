"""ZoneById and ZonesByCity."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from gateway.db import Db
from gateway.store import Row, shared
from loaders.base import grouped
from loaders.shared import rows_by_id

ZoneById = rows_by_id("zones")


async def ZonesByCity(db: Db, keys: Sequence[UUID]) -> list[list[Row]]:
    return grouped(await shared.zones_by_cities(db, keys), keys, "city_id")
