"""MessagesByConversation, MessageById and MessageCountByConversation.

Keys carry the store (``'v1'``/``'v2'``). ``MessagesByConversation`` keys are
``(source, conversation_id, limit, after)``; keys sharing a store and page shape go to one
LATERAL statement (the first N messages of every conversation at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from gateway.db import Db
from gateway.store import Row, messages
from gateway.store.keyset import Keyset
from loaders.base import grouped

PageKey = tuple[str, UUID, int, Keyset | None]


async def MessagesByConversation(db: Db, keys: Sequence[PageKey]) -> list[list[Row]]:
    results: dict[PageKey, list[Row]] = {}
    shapes: dict[tuple[str, int, Keyset | None], list[UUID]] = {}
    for source, conversation_id, limit, after in keys:
        shapes.setdefault((source, limit, after), []).append(conversation_id)
    for (source, limit, after), ids in shapes.items():
        rows = await messages.first_by_conversation(db, source, ids, after=after, limit=limit)
        for cid, group in zip(ids, grouped(rows, ids, "conversation_key"), strict=True):
            results[(source, cid, limit, after)] = group
    return [results[k] for k in keys]


async def MessageById(db: Db, keys: Sequence[tuple[str, UUID]]) -> list[Row | None]:
    found: dict[tuple[str, UUID], Row] = {}
    for source in ("v1", "v2"):
        ids = [i for s, i in keys if s == source]
        if ids:
            for row in await messages.by_ids(db, source, ids):
                found[(source, row["id"])] = row
    return [found.get(k) for k in keys]


async def MessageCountByConversation(
    db: Db, keys: Sequence[tuple[str, UUID]]
) -> list[int]:
    counts: dict[tuple[str, UUID], int] = {}
    for source in ("v1", "v2"):
        ids = [i for s, i in keys if s == source]
        if ids:
            for cid, n in (await messages.count_by_conversation(db, source, ids)).items():
                counts[(source, cid)] = n
    return [counts.get(k, 0) for k in keys]
