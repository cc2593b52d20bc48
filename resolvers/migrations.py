"""``Mutation.migrateConversation`` and ``Mutation.revertMigration``.

Rights are checked under the viewer's own role (RLS decides what they can see: an owner sees
their conversation, an admin sees all); the copy itself runs as ``service_role`` inside the
same transaction, then the transaction switches back to the viewer for the payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from gateway.context import Context
from gateway.db import Db
from gateway.errors import BadUserInput, Forbidden, NotFound
from gateway.store import migration as store
from gateway.store import verify
from gateway.store.chat_writes import conversation_owner
from gateway.store.project_writes import project_owner
from resolvers.acting import as_service, as_viewer, signed_in
from resolvers.ids import expect_id


def _signed_in(context: Context) -> None:
    signed_in(context, "migrate conversations")


async def migrate(
    context: Context, conversation_id: str, project_id: str | None
) -> tuple[dict[str, object], bool]:
    """Migrate (or return the existing migration of) a v1 conversation.

    Returns the tracking row and whether it had already been migrated.
    """
    _signed_in(context)
    _, v1_id = expect_id(conversation_id, "V1Conversation", argument="conversationId")
    target = expect_id(project_id, "Project", argument="projectId")[1] if project_id else None
    db = await context.db()
    owner = await conversation_owner(db, "v1", v1_id)
    if owner is None:
        raise NotFound("conversation not found")
    if target is not None:
        await _check_project(db, target, owner)
    await as_service(context)
    claimed = await store.claim(db, v1_id)
    if claimed is None:
        raise NotFound("conversation not found")
    tracking = claimed.tracking
    if not claimed.already_migrated:
        tracking = await store.copy(
            db, v1_id=v1_id, tracking_id=tracking["id"], project_id=target
        )
    await as_viewer(context)
    return dict(tracking), claimed.already_migrated


async def _check_project(db: Db, project_id: UUID, conversation_owned_by: UUID) -> None:
    owned_by = await project_owner(db, project_id)
    if owned_by is None:
        raise NotFound("project not found")
    if owned_by != conversation_owned_by:
        raise Forbidden("the project does not belong to the conversation's owner")


async def revert(context: Context, conversation_id: str) -> dict[str, object]:
    """Remove the v2 copy of a migrated conversation (given by its v1 or v2 id)."""
    _signed_in(context)
    type_name, database_id = expect_id(
        conversation_id, "V1Conversation", "V2Conversation", argument="conversationId"
    )
    db = await context.db()
    v1 = database_id if type_name == "V1Conversation" else None
    v2 = database_id if type_name == "V2Conversation" else None
    visible = (
        await conversation_owner(db, "v1", v1) if v1 is not None
        else await conversation_owner(db, "v2", v2)  # type: ignore[arg-type]
    )
    if visible is None:
        raise NotFound("conversation not found")
    await as_service(context)
    tracking = await store.lock_for_revert(db, v1_id=v1, v2_id=v2)
    if tracking is None or tracking["migration_status"] != "completed":
        raise BadUserInput("this conversation has no completed migration to revert")
    reverted = await store.revert(db, tracking)
    await as_viewer(context)
    return dict(reverted)


@dataclass(frozen=True)
class StatusCount:
    status: str  # as stored: 'pending', 'completed', …
    count: int


@dataclass(frozen=True)
class Report:
    statuses: list[StatusCount]
    not_migrated: int
    failed: list[verify.Problem]  # with ``description``, as ``MigrationProblem`` has
    problems: list[verify.Problem]
    ok: bool


async def report(context: Context) -> Report | None:
    """Parity of the migrations the viewer can see (all of them for admins and the service
    role); null for anonymous viewers."""
    if context.is_anonymous:
        return None
    result = await verify.verify(await context.db())
    problems = list(result.problems)
    return Report(
        statuses=[
            StatusCount(status=status, count=count)
            for status, count in result.statuses.items()
            if status in verify.STATUSES
        ],
        not_migrated=result.not_migrated,
        failed=list(result.failed),
        problems=problems,
        ok=not problems,
    )
