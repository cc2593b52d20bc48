"""Migrations from v1 to v2 (the ``migration_tracking`` bridge)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry

from schema.common import Info, Node
from schema.conversation import V1Conversation, V2Conversation, conversation_from_row
from schema.ids import to_global_id
from schema.project import Project


@strawberry.enum
class MigrationStatus(Enum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    REVERTED = "reverted"


@strawberry.type
class Migration(Node):
    database_id: UUID
    status: MigrationStatus
    migrated_at: datetime | None
    reverted_at: datetime | None
    error_message: str | None
    v1_conversation_id: strawberry.Private[UUID | None]
    v2_conversation_id: strawberry.Private[UUID | None]
    v2_project_id: strawberry.Private[UUID | None]

    @classmethod
    def from_row(cls, row: Any) -> Migration:
        return cls(
            id=strawberry.ID(to_global_id("Migration", row["id"])),
            database_id=row["id"],
            status=MigrationStatus(row["migration_status"]),
            migrated_at=row["migrated_at"],
            reverted_at=row["reverted_at"],
            error_message=row["error_message"],
            v1_conversation_id=row["v1_conversation_id"],
            v2_conversation_id=row["v2_conversation_id"],
            v2_project_id=row["v2_project_id"],
        )

    @strawberry.field
    async def v1_conversation(self, info: Info) -> V1Conversation | None:
        if self.v1_conversation_id is None:
            return None
        row = await info.context.loaders.v1_conversation.load(self.v1_conversation_id)
        return conversation_from_row(row) if row else None  # type: ignore[return-value]

    @strawberry.field
    async def v2_conversation(self, info: Info) -> V2Conversation | None:
        if self.v2_conversation_id is None:
            return None
        row = await info.context.loaders.v2_conversation.load(self.v2_conversation_id)
        return conversation_from_row(row) if row else None  # type: ignore[return-value]

    @strawberry.field
    async def project(self, info: Info) -> Project | None:
        if self.v2_project_id is None:
            return None
        row = await info.context.loaders.project.load(self.v2_project_id)
        return Project.from_row(row) if row else None


@strawberry.input
class MigrateConversationInput:
    conversation_id: strawberry.ID = strawberry.field(description="A V1Conversation id.")
    project_id: strawberry.ID | None = strawberry.field(
        default=None, description="An existing project of the owner; a new draft otherwise."
    )


@strawberry.input
class RevertMigrationInput:
    conversation_id: strawberry.ID = strawberry.field(
        description="The V1Conversation or its V2Conversation copy."
    )


@strawberry.type
class MigrateConversationPayload:
    migration: Migration
    already_migrated: bool

    @strawberry.field
    async def conversation(self, info: Info) -> V2Conversation:
        conversation = await self.migration.v2_conversation(info)
        if conversation is None:
            raise LookupError("migrated conversation is not visible")
        return conversation

    @strawberry.field
    async def project(self, info: Info) -> Project:
        project = await self.migration.project(info)
        if project is None:
            raise LookupError("migrated project is not visible")
        return project


@strawberry.type
class RevertMigrationPayload:
    migration: Migration

    @strawberry.field
    async def v1_conversation(self, info: Info) -> V1Conversation:
        conversation = await self.migration.v1_conversation(info)
        if conversation is None:
            raise LookupError("reverted conversation is not visible")
        return conversation


@strawberry.type
class MigrationStatusCount:
    status: MigrationStatus
    count: int


@strawberry.type
class MigrationProblem:
    kind: str
    description: str
    detail: str
    messages: int
    v1_conversation_id: UUID | None
    v2_conversation_id: UUID | None


@strawberry.type(description="Parity between v1 originals and their v2 copies.")
class MigrationReport:
    statuses: list[MigrationStatusCount]
    not_migrated: int = strawberry.field(description="v1 conversations never migrated.")
    failed: list[MigrationProblem]
    problems: list[MigrationProblem] = strawberry.field(
        description="Parity problems of completed migrations (counts, order, role, text, "
        "timestamps, replies, document links, drift, orphans)."
    )

    @strawberry.field(description="True when no completed migration has a parity problem.")
    def ok(self) -> bool:
        return not self.problems
