"""Migrations from v1 to v2 (the ``migration_tracking`` bridge)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

import strawberry

from schema.common import Info, Node
from schema.conversation import V1Conversation, V2Conversation, conversation_from_row
from schema.ids import to_global_id
from schema.project import Project

T = TypeVar("T")


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
        return await load_v1(info, self.v1_conversation_id)

    @strawberry.field
    async def v2_conversation(self, info: Info) -> V2Conversation | None:
        return await load_v2(info, self.v2_conversation_id)

    @strawberry.field
    async def project(self, info: Info) -> Project | None:
        return await load_project(info, self.v2_project_id)


async def load_v1(info: Info, conversation_id: UUID | None) -> V1Conversation | None:
    if conversation_id is None:
        return None
    row = await info.context.loaders.v1_conversation.load(conversation_id)
    return conversation_from_row(row) if row else None  # type: ignore[return-value]


async def load_v2(info: Info, conversation_id: UUID | None) -> V2Conversation | None:
    if conversation_id is None:
        return None
    row = await info.context.loaders.v2_conversation.load(conversation_id)
    return conversation_from_row(row) if row else None  # type: ignore[return-value]


async def load_project(info: Info, project_id: UUID | None) -> Project | None:
    if project_id is None:
        return None
    row = await info.context.loaders.project.load(project_id)
    return Project.from_row(row) if row else None


def visible(value: T | None, what: str) -> T:
    """A payload object the mutation just wrote must be visible to its viewer."""
    if value is None:
        raise LookupError(f"{what} is not visible")
    return value


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
        migration = self.migration
        return visible(await load_v2(info, migration.v2_conversation_id), "migrated conversation")

    @strawberry.field
    async def project(self, info: Info) -> Project:
        return visible(await load_project(info, self.migration.v2_project_id), "migrated project")


@strawberry.type
class RevertMigrationPayload:
    migration: Migration

    @strawberry.field
    async def v1_conversation(self, info: Info) -> V1Conversation:
        migration = self.migration
        return visible(await load_v1(info, migration.v1_conversation_id), "reverted conversation")


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
    ok: bool = strawberry.field(
        description="True when no completed migration has a parity problem."
    )
