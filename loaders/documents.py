"""DocumentById, DocumentsByConversation (key: (source, id)) and DocumentsByProject."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from gateway.db import Db
from gateway.store import Row, conversations, projects, shared
from loaders.base import by_key, grouped


async def DocumentById(db: Db, keys: Sequence[UUID]) -> list[Row | None]:
    return by_key(await shared.documents_by_ids(db, keys), keys)


async def DocumentsByConversation(
    db: Db, keys: Sequence[tuple[str, UUID]]
) -> list[list[Row]]:
    rows = await conversations.documents_by_conversation(db, keys)
    groups: dict[tuple[str, UUID], list[Row]] = {}
    for row in rows:
        groups.setdefault((row["source_key"], row["conversation_key"]), []).append(row)
    return [groups.get(k, []) for k in keys]


async def DocumentsByProject(db: Db, keys: Sequence[UUID]) -> list[list[Row]]:
    return grouped(await projects.documents_by_project(db, keys), keys, "project_key")
