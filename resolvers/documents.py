"""``attachDocument``, ``detachDocument`` (v2 conversations) and ``pinProjectDocument``, written
as the viewer: another user's conversation or project is ``NOT_FOUND``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from strawberry import UNSET

from gateway.context import Context
from gateway.errors import BadUserInput, NotFound
from gateway.store import document_links as store
from gateway.store import project_writes as projects
from resolvers.acting import may_write_for, signed_in
from resolvers.ids import expect_id


def _ids(given: Any) -> tuple[UUID, UUID]:
    conversation = expect_id(given.conversation_id, "V2Conversation", argument="conversationId")
    document = expect_id(given.document_id, "Document", argument="documentId")
    return conversation[1], document[1]


async def _document_exists(context: Context, document_id: UUID) -> None:
    if await projects.missing(await context.db(), "documents", [document_id]):
        raise BadUserInput("documentId names no document")


async def _locked(context: Context, conversation_id: UUID) -> None:
    if not await store.lock_conversation(await context.db(), conversation_id):
        raise NotFound("conversation not found")


async def attach_document(context: Context, given: Any) -> dict[str, Any]:
    signed_in(context, "attach documents")
    conversation_id, document_id = _ids(given)
    relevance = given.relevance_score
    if relevance is not None and not 0 <= relevance <= 1:
        raise BadUserInput("relevanceScore must be between 0 and 1")
    await _document_exists(context, document_id)
    await _locked(context, conversation_id)
    await store.attach(await context.db(), conversation_id, document_id, relevance)
    return {"conversation_id": conversation_id}


async def detach_document(context: Context, given: Any) -> dict[str, Any]:
    signed_in(context, "detach documents")
    conversation_id, document_id = _ids(given)
    await _locked(context, conversation_id)
    await store.detach(await context.db(), conversation_id, document_id)
    return {"conversation_id": conversation_id}


async def pin_project_document(context: Context, given: Any) -> dict[str, Any]:
    signed_in(context, "pin documents")
    project_id = expect_id(given.project_id, "Project", argument="projectId")[1]
    document_id = expect_id(given.document_id, "Document", argument="documentId")[1]
    if given.pinned is None:
        raise BadUserInput("pinned cannot be null")
    await _document_exists(context, document_id)
    db = await context.db()
    owner = await projects.project_owner(db, project_id)
    if owner is None or not may_write_for(context, owner):
        raise NotFound("project not found")
    await store.pin(db, project_id, document_id, pinned=given.pinned,
                    notes=None if given.notes is UNSET else given.notes,
                    set_notes=given.notes is not UNSET)
    return {"id": project_id}
