"""Conversations of both stores behind one ``Conversation`` interface."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from schema.common import Connection, Node, Source, declared
from schema.document import Document
from schema.message import Message
from schema.profile import Profile

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
    owner: Profile | None
    documents: list[Document]

    @strawberry.field(description="Messages, oldest first.")  # type: ignore[untyped-decorator]
    def messages(self, first: int | None = 20, after: str | None = None) -> Connection[Message]:
        declared()


@strawberry.type
class V1Conversation(Conversation):
    document: Document | None
    migration: Annotated[Migration, strawberry.lazy("schema.migration")] | None = strawberry.field(
        description="The migration of this conversation; null when never migrated."
    )


@strawberry.type
class V2Conversation(Conversation):
    conversation_type: str | None
    context_metadata: JSON | None
    archived_at: datetime | None
    document_count: int
    updated_at: datetime | None
    project: Annotated[Project, strawberry.lazy("schema.project")]
    migrated_from: V1Conversation | None = strawberry.field(
        description="The v1 conversation this one was migrated from, if any."
    )
