"""Conversations of both stores behind one ``Conversation`` interface."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from schema.common import Connection, Info, Node, Source, build_connection, later, page_size
from schema.document import Document
from schema.ids import encode_cursor, time_keyset, to_global_id
from schema.message import Message, message_cursor, message_from_row
from schema.profile import Profile, load_profile

if TYPE_CHECKING:
    from schema.migration import Migration
    from schema.project import Project


@strawberry.interface
class Conversation(Node):
    database_id: UUID
    source: Source
    title: str | None
    is_active: bool | None
    last_message_at: datetime | None
    created_at: datetime | None
    message_count: int
    user_id: strawberry.Private[UUID]

    @strawberry.field
    async def owner(self, info: Info) -> Profile | None:
        return await load_profile(info, self.user_id)

    @strawberry.field
    async def documents(self, info: Info) -> list[Document]:
        key = (self.source.value, self.database_id)
        loaders = info.context.loaders
        rows = await loaders.documents_by_conversation.load(key)
        for row in rows:  # messages usually refer to their conversation's documents
            loaders.document.prime(row["id"], row)
        return [Document.from_row(r) for r in rows]

    @strawberry.field(description="Messages, oldest first.")  # type: ignore[untyped-decorator]
    async def messages(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[Message]:
        limit = page_size(first)
        keyset = time_keyset("message", after)
        loaders = info.context.loaders
        source = self.source.value
        rows = await loaders.messages_by_conversation.load(
            (source, self.database_id, limit + 1, keyset)
        )
        for row in rows:  # replies mostly point into the same page
            loaders.message.prime((source, row["id"]), row)

        async def count() -> int:
            return await loaders.message_count.load((source, self.database_id))

        return build_connection(
            rows, limit, lambda r: message_from_row(source, r), message_cursor, count
        )


@strawberry.type
class V1Conversation(Conversation):
    document_id: strawberry.Private[UUID | None]

    @strawberry.field
    def document(self, info: Info) -> Document | None:
        if self.document_id is None:
            return None
        return later(self._document(info))

    async def _document(self, info: Info) -> Document | None:
        # The same batch as ``documents`` (a v1 conversation's documents are its document).
        rows = await info.context.loaders.documents_by_conversation.load(
            (self.source.value, self.database_id)
        )
        return Document.from_row(rows[0]) if rows else None

    @strawberry.field(description="The migration of this conversation; null when never migrated.")  # type: ignore[untyped-decorator]
    async def migration(
        self, info: Info
    ) -> Annotated[Migration, strawberry.lazy("schema.migration")] | None:
        from schema.migration import Migration

        row = await info.context.loaders.migration_by_v1.load(self.database_id)
        return Migration.from_row(row) if row else None


@strawberry.type
class V2Conversation(Conversation):
    conversation_type: str | None
    context_metadata: JSON | None
    archived_at: datetime | None
    document_count: int
    updated_at: datetime | None
    project_id: strawberry.Private[UUID]

    @strawberry.field
    async def project(self, info: Info) -> Annotated[Project, strawberry.lazy("schema.project")]:
        from schema.project import Project

        row = await info.context.loaders.project.load(self.project_id)
        if row is None:
            # The project is the conversation's owner's; RLS shows both or neither.
            raise LookupError("project of a visible conversation is not visible")
        return Project.from_row(row)

    @strawberry.field(description="The v1 conversation this one was migrated from, if any.")  # type: ignore[untyped-decorator]
    async def migrated_from(self, info: Info) -> V1Conversation | None:
        migration = await info.context.loaders.migration_by_v2.load(self.database_id)
        if migration is None or migration["v1_conversation_id"] is None:
            return None
        row = await info.context.loaders.v1_conversation.load(migration["v1_conversation_id"])
        return conversation_from_row(row) if row else None  # type: ignore[return-value]


def conversation_from_row(row: Any) -> Conversation:
    """The one place a conversation row becomes a graph object, tagged with its store."""
    source = row["source"]
    common: dict[str, Any] = {
        "database_id": row["id"],
        "source": Source(source),
        "title": row["title"],
        "is_active": row["is_active"],
        "last_message_at": row["last_message_at"],
        "created_at": row["created_at"],
        "message_count": row["message_count"] or 0,
        "user_id": row["user_id"],
    }
    if source == "v1":
        return V1Conversation(
            id=strawberry.ID(to_global_id("V1Conversation", row["id"])),
            document_id=row["document_id"],
            **common,
        )
    return V2Conversation(
        id=strawberry.ID(to_global_id("V2Conversation", row["id"])),
        conversation_type=row["conversation_type"],
        context_metadata=row["context_metadata"],
        archived_at=row["archived_at"],
        document_count=row["document_count"] or 0,
        updated_at=row["updated_at"],
        project_id=row["project_id"],
        **common,
    )


def conversation_cursor(row: Any) -> str:
    return encode_cursor("conversation", row["last_message_at"], row["id"])
