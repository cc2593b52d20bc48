"""``Query.conversations``: one keyset-paginated listing over both stores."""

from __future__ import annotations

from gateway.store import conversations as store
from resolvers.arguments import aware
from schema.common import Connection, Info, Source, build_connection, page_size
from schema.conversation import Conversation, conversation_cursor, conversation_from_row
from schema.ids import expect_id, time_keyset
from schema.inputs import ConversationFilter


def to_store_filter(f: ConversationFilter | None) -> store.ConversationFilter:
    if f is None:
        return store.ConversationFilter()

    def uuid_of(value: str | None, type_name: str, argument: str) -> object:
        return expect_id(value, type_name, argument=argument)[1] if value is not None else None

    return store.ConversationFilter(
        source=f.source.value if isinstance(f.source, Source) else None,
        owner_id=uuid_of(f.owner_id, "Profile", "ownerId"),  # type: ignore[arg-type]
        project_id=uuid_of(f.project_id, "Project", "projectId"),  # type: ignore[arg-type]
        document_id=uuid_of(f.document_id, "Document", "documentId"),  # type: ignore[arg-type]
        is_active=f.is_active,
        last_message_after=aware(f.last_message_after, "lastMessageAfter"),
        last_message_before=aware(f.last_message_before, "lastMessageBefore"),
        include_migrated=bool(f.include_migrated),
    )


async def conversations(
    info: Info, filter: ConversationFilter | None, first: int | None, after: str | None
) -> Connection[Conversation]:
    limit = page_size(first)
    criteria = to_store_filter(filter)
    keyset = time_keyset("conversation", after)
    context = info.context
    if context.is_anonymous:
        return Connection.empty()
    db = await context.db()
    rows = await store.page(db, criteria, after=keyset, limit=limit + 1)

    async def count() -> int:
        return await store.count(await context.db(), criteria)

    return build_connection(rows, limit, conversation_from_row, conversation_cursor, count)
