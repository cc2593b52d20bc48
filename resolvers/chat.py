"""``startConversation``, ``postMessage`` and ``archiveConversation``, in whichever store the
conversation lives (DESIGN §9).

Each runs in the request's one transaction. v2 rows are written as the viewer (RLS decides);
v1 tables have no write policy for users, so the resolver checks the viewer's rights first and
writes those rows as the service role, then switches back to the viewer for the payload, as the
migration does. The analytics event is written by the message's own statement, through
``mwplu_private.record_chat_event`` (it checks the conversation is the caller's).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from gateway.context import Context
from gateway.errors import BadUserInput, Conflict, Forbidden, NotFound
from gateway.store import chat_writes as store
from gateway.store import flags
from gateway.store import project_writes as projects
from resolvers.acting import (
    NIL,
    acting_user,
    as_service,
    as_viewer,
    may_write_for,
    owner_for_new_rows,
    signed_in,
)
from resolvers.ids import expect_id, to_global_id

MESSAGE_TYPES = ("text", "address_search", "document_summary", "comparison", "clarification")
CONVERSATION_TYPES = ("address_analysis", "multi_zone", "general")
MAX_KEY = 200
STORES = {"V1Conversation": "v1", "V2Conversation": "v2"}


def conversation_of(value: str) -> tuple[str, UUID]:
    """The store and row id of a ``Conversation`` id."""
    type_name, row_id = expect_id(value, *STORES, argument="conversationId")
    return STORES[type_name], row_id


def document_ids(values: list[str] | None) -> list[UUID]:
    ids = [expect_id(v, "Document", argument="documentIds")[1] for v in values or []]
    return list(dict.fromkeys(ids))


async def _documents_exist(context: Context, ids: list[UUID]) -> None:
    if ids and await projects.missing(await context.db(), "documents", ids):
        raise BadUserInput("documentIds names a document that does not exist")


def message_of(given: Any, source: str) -> dict[str, Any]:
    """The checked fields of a ``PostMessageInput`` (``source`` decides the reply's id type)."""
    if not given.text.strip():
        raise BadUserInput("text must not be empty")
    if given.message_type is not None and given.message_type not in MESSAGE_TYPES:
        raise BadUserInput(f"messageType must be one of {', '.join(MESSAGE_TYPES)}")
    if given.tokens_total is not None and given.tokens_total < 0:
        raise BadUserInput("tokensTotal cannot be negative")
    cost: Decimal | None = given.cost_total
    if cost is not None and (not cost.is_finite() or cost < 0):
        raise BadUserInput("costTotal must be a finite amount, not negative")
    key = given.idempotency_key
    if key is not None and not 1 <= len(key) <= MAX_KEY:
        raise BadUserInput(f"idempotencyKey must be 1 to {MAX_KEY} characters")
    reply_type = f"{source.upper()}Message"
    return {
        "role": given.role.value if given.role is not None else "user",
        "text": given.text,
        "reply_to": (
            expect_id(given.reply_to_id, reply_type, argument="replyToId")[1]
            if given.reply_to_id is not None else None
        ),
        "documents": document_ids(given.document_ids),
        "message_type": given.message_type,
        "model": given.ai_model_used,
        "tokens_total": given.tokens_total,
        "cost_total": cost,
        "key": key,
    }


async def post_message(context: Context, given: Any) -> dict[str, Any]:
    signed_in(context, "post messages")
    source, conversation_id = conversation_of(given.conversation_id)
    message = message_of(given, source)
    if message["role"] != "user" and not context.is_service:
        raise Forbidden("ASSISTANT and SYSTEM messages are posted by the service role")
    await _documents_exist(context, message["documents"])
    return await post(context, source, conversation_id, **message)


async def post(
    context: Context, source: str, conversation_id: UUID, *, role: str, text: str,
    reply_to: UUID | None, documents: list[UUID], message_type: str | None, model: str | None,
    tokens_total: int | None, cost_total: Decimal | None, key: str | None,
) -> dict[str, Any]:
    """Write one message and its event into a conversation the viewer may write to; the
    payload row (``PostMessagePayload``)."""
    db = await context.db()
    acting = acting_user(context) or NIL
    if source == "v1":
        owner = await store.conversation_owner(db, "v1", conversation_id)
        if owner is None or not may_write_for(context, owner):
            raise NotFound("conversation not found")
        await as_service(context)
    owner = await store.lock(db, source, conversation_id)
    if owner is None or not may_write_for(context, owner):
        raise NotFound("conversation not found")
    inserted = await store.insert_message(db, source, store.NewMessage(
        conversation_id=conversation_id, user_id=owner, role=role, text=text,
        documents=tuple(documents), reply_to=reply_to, message_type=message_type, model=model,
        tokens_total=tokens_total, cost_total=cost_total,
    ), owner=acting, key=key)
    if inserted.migrated_to is not None:
        raise Conflict(
            "this v1 conversation was migrated to v2 and is read-only; post to its copy",
            v2ConversationId=to_global_id("V2Conversation", inserted.migrated_to),
        )
    event_id: UUID | None
    if inserted.first is not None:
        message_id, event_id = inserted.first
    else:
        if inserted.message_id is None:  # the reply's target is not in the conversation
            raise BadUserInput("replyToId must be a message of the same conversation")
        message_id, event_id = inserted.message_id, inserted.event_id
        context.writes[("messages", source)] += 1
    if source == "v1":
        await as_viewer(context)
    return {"source": source, "conversation_id": conversation_id, "message_id": message_id,
            "event_id": event_id}


async def _route(context: Context, owner: UUID, project_id: UUID | None) -> str:
    """v2 when a project is given, else as the flag ``v2_conversations`` decides for the owner
    (the decision is recorded in ``feature_flag_evaluations``)."""
    if project_id is not None:
        return "v2"
    on, _ = await flags.decide_and_record(await context.db(), flags.V2_CONVERSATIONS, owner)
    return "v2" if on else "v1"


async def start_conversation(context: Context, given: Any) -> dict[str, Any]:
    signed_in(context, "start conversations")
    project_id = (
        expect_id(given.project_id, "Project", argument="projectId")[1]
        if given.project_id is not None else None
    )
    documents = document_ids(given.document_ids)
    if given.conversation_type is not None and given.conversation_type not in CONVERSATION_TYPES:
        raise BadUserInput(f"conversationType must be one of {', '.join(CONVERSATION_TYPES)}")
    if given.text is not None and not given.text.strip():
        raise BadUserInput("text must not be empty")
    db = await context.db()
    if project_id is not None:
        owner = await projects.project_owner(db, project_id)
        if owner is None or not may_write_for(context, owner):
            raise NotFound("project not found")
    else:
        owner = owner_for_new_rows(context)
    source = await _route(context, owner, project_id)
    if source == "v1" and len(documents) > 1:
        raise BadUserInput("a v1 conversation has at most one document")
    await _documents_exist(context, documents)
    if source == "v2":
        if project_id is None:
            project_id = await projects.create(db, owner=owner, values={})
        conversation_id = await store.create_v2(
            db, owner=owner, project_id=project_id, title=given.title,
            conversation_type=given.conversation_type, context_metadata=given.context_metadata,
            documents=documents,
        )
    else:
        await as_service(context)
        conversation_id = await store.create_v1(
            db, owner=owner, document_id=documents[0] if documents else None
        )
        await as_viewer(context)
    row: dict[str, Any] = {"source": source, "routed_to": source,
                           "conversation_id": conversation_id, "message_id": None}
    if given.text is not None:
        posted = await post(
            context, source, conversation_id, role="user", text=given.text, reply_to=None,
            documents=documents[:1] if source == "v1" else [], message_type=None, model=None,
            tokens_total=None, cost_total=None, key=None,
        )
        row["message_id"] = posted["message_id"]
    await as_viewer(context)
    return row


async def archive_conversation(context: Context, given: Any) -> dict[str, Any]:
    signed_in(context, "archive conversations")
    source, conversation_id = conversation_of(given.conversation_id)
    db = await context.db()
    if source == "v1":
        owner = await store.conversation_owner(db, "v1", conversation_id)
        if owner is None or not may_write_for(context, owner):
            raise NotFound("conversation not found")
        await as_service(context)
    if not await store.archive(db, source, conversation_id):
        raise NotFound("conversation not found")
    await as_viewer(context)
    return {"source": source, "conversation_id": conversation_id}
