"""Migrations from v1 to v2 (the ``migration_tracking`` bridge)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from uuid import UUID

import strawberry

from schema.common import Node
from schema.conversation import V1Conversation, V2Conversation
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
    v1_conversation: V1Conversation | None
    v2_conversation: V2Conversation | None
    project: Project | None


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
    conversation: V2Conversation
    project: Project


@strawberry.type
class RevertMigrationPayload:
    migration: Migration
    v1_conversation: V1Conversation


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
