"""``Query.conversations``' filter, as the store reads it."""

from __future__ import annotations

from typing import Any

from gateway.store import conversations as store
from resolvers.arguments import aware
from resolvers.ids import optional_id


def to_store_filter(f: Any) -> store.ConversationFilter:
    """The ``ConversationFilter`` input (ids decoded, instants checked) as the store's."""
    if f is None:
        return store.ConversationFilter()
    return store.ConversationFilter(
        source=getattr(f.source, "value", None),
        owner_id=optional_id(f.owner_id, "Profile", "ownerId"),
        project_id=optional_id(f.project_id, "Project", "projectId"),
        document_id=optional_id(f.document_id, "Document", "documentId"),
        is_active=f.is_active,
        last_message_after=aware(f.last_message_after, "lastMessageAfter"),
        last_message_before=aware(f.last_message_before, "lastMessageBefore"),
        include_migrated=bool(f.include_migrated),
    )
