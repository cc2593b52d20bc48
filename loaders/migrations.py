"""MigrationById, MigrationByV1Conversation, MigrationByV2Conversation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

from gateway.db import Db
from gateway.store import Row, bridge
from loaders.base import by_key


def _by(column: str) -> Callable[[Db, Sequence[UUID]], Awaitable[list[Row | None]]]:
    async def fetch(db: Db, keys: Sequence[UUID]) -> list[Row | None]:
        return by_key(await bridge.by_column(db, column, keys), keys, column)

    return fetch


MigrationById = _by("id")
MigrationByV1Conversation = _by("v1_conversation_id")
MigrationByV2Conversation = _by("v2_conversation_id")
