"""``Query.chatEvents`` and ``Query.chatEventStats``."""

from __future__ import annotations

from gateway.store import analytics as store
from resolvers.arguments import aware
from schema.analytics import ChatEvent, ChatEventBucket, ChatEventFilter, ChatEventGroupBy
from schema.common import Connection, Info, build_connection, page_size
from schema.ids import encode_cursor, expect_id, time_keyset


def to_store_filter(f: ChatEventFilter | None) -> store.EventFilter:
    if f is None:
        return store.EventFilter()
    return store.EventFilter(
        source=f.source.value if f.source else None,
        start=aware(f.from_, "from"),
        end=aware(f.to, "to"),
        user_id=expect_id(f.user_id, "Profile", argument="userId")[1] if f.user_id else None,
        document_id=(
            expect_id(f.document_id, "Document", argument="documentId")[1]
            if f.document_id
            else None
        ),
        model_name=f.model_name,
    )


async def chat_events(
    info: Info, filter: ChatEventFilter | None, first: int | None, after: str | None
) -> Connection[ChatEvent]:
    limit = page_size(first)
    criteria = to_store_filter(filter)
    keyset = time_keyset("event", after)
    context = info.context
    if context.is_anonymous:
        return Connection.empty()
    rows = await store.page(await context.db(), criteria, after=keyset, limit=limit + 1)

    async def count() -> int:
        return await store.count(await context.db(), criteria)

    return build_connection(
        rows,
        limit,
        ChatEvent.from_row,
        lambda r: encode_cursor("event", r["created_at"], r["id"]),
        count,
    )


async def chat_event_stats(
    info: Info, filter: ChatEventFilter | None, group_by: list[ChatEventGroupBy] | None
) -> list[ChatEventBucket]:
    criteria = to_store_filter(filter)
    if info.context.is_anonymous:
        return []
    groups = [g.value for g in group_by or []]
    rows = await store.stats(await info.context.db(), criteria, groups)
    return [ChatEventBucket.from_row(r) for r in rows]
