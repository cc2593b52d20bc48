"""V1ConversationById, V2ConversationById, V2ConversationsByProject, V2CountByProject.

``V2ConversationsByProject`` keys are ``(project_id, limit, after)``: keys sharing a page
shape go to one LATERAL statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from gateway.db import Db
from gateway.store import Row, conversations
from gateway.store.keyset import Keyset
from loaders.base import by_key, grouped

PageKey = tuple[UUID, int, Keyset | None]


async def V1ConversationById(db: Db, keys: Sequence[UUID]) -> list[Row | None]:
    return by_key(await conversations.v1_by_ids(db, keys), keys)


async def V2ConversationById(db: Db, keys: Sequence[UUID]) -> list[Row | None]:
    return by_key(await conversations.v2_by_ids(db, keys), keys)


async def V2ConversationsByProject(
    db: Db, keys: Sequence[PageKey]
) -> list[list[Row]]:
    results: dict[PageKey, list[Row]] = {}
    shapes: dict[tuple[int, Keyset | None], list[UUID]] = {}
    for project_id, limit, after in keys:
        shapes.setdefault((limit, after), []).append(project_id)
    for (limit, after), ids in shapes.items():
        rows = await conversations.v2_page_by_project(db, ids, after=after, limit=limit)
        for project_id, group in zip(ids, grouped(rows, ids, "project_key"), strict=True):
            results[(project_id, limit, after)] = group
    return [results[k] for k in keys]


async def V2CountByProject(db: Db, keys: Sequence[UUID]) -> list[int]:
    counts = await conversations.v2_count_by_project(db, keys)
    return [counts.get(k, 0) for k in keys]
