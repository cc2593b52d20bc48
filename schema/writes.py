"""The inputs and payloads of the write mutations (DESIGN §9). Inputs take global ids; a field
left out is ``UNSET`` (unchanged), an explicit null clears a nullable column."""

from __future__ import annotations

from decimal import Decimal

import strawberry
from strawberry.scalars import JSON

from schema.analytics import ChatEvent
from schema.common import Source
from schema.conversation import Conversation, V2Conversation
from schema.message import Message, MessageRole
from schema.project import Project, ProjectStatus

UNSET = strawberry.UNSET


@strawberry.input
class CreateProjectInput:
    name: str | None = UNSET
    description: str | None = UNSET
    project_type: str | None = strawberry.field(
        default=UNSET,
        description="construction, extension, renovation, amenagement, lotissement or other.",
    )
    main_address: str | None = UNSET
    main_city_id: strawberry.ID | None = UNSET
    main_zone_id: strawberry.ID | None = UNSET
    geo_lon: Decimal | None = UNSET
    geo_lat: Decimal | None = UNSET
    color: str | None = UNSET
    icon: str | None = UNSET
    metadata: JSON | None = UNSET


@strawberry.input
class UpdateProjectInput(CreateProjectInput):
    project_id: strawberry.ID
    starred: bool | None = UNSET
    position: int | None = UNSET
    status: ProjectStatus | None = UNSET
    plu_alert_enabled: bool | None = UNSET
    plu_check_frequency: str | None = strawberry.field(
        default=UNSET, description="daily, weekly or monthly."
    )


@strawberry.type
class CreateProjectPayload:
    project: Project


@strawberry.type
class UpdateProjectPayload:
    project: Project


@strawberry.input
class StartConversationInput:
    project_id: strawberry.ID | None = strawberry.field(
        default=None, description="A project of the viewer: the conversation goes to v2."
    )
    title: str | None = None
    conversation_type: str | None = strawberry.field(
        default=None, description="address_analysis (default), multi_zone or general (v2)."
    )
    context_metadata: JSON | None = None
    document_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="At most one for a v1 conversation."
    )
    text: str | None = strawberry.field(
        default=None, description="Posted as the first USER message."
    )


@strawberry.type
class StartConversationPayload:
    conversation: Conversation
    message: Message | None
    routed_to: Source


@strawberry.input
class PostMessageInput:
    conversation_id: strawberry.ID
    text: str
    role: MessageRole | None = strawberry.field(
        default=MessageRole.USER, description="ASSISTANT and SYSTEM need the service role."
    )
    reply_to_id: strawberry.ID | None = None
    document_ids: list[strawberry.ID] | None = None
    message_type: str | None = None
    ai_model_used: str | None = None
    tokens_total: int | None = None
    cost_total: Decimal | None = None
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="A retry with the same key (same viewer and conversation, within 24 "
        "hours) returns the first result and writes nothing.",
    )


@strawberry.type
class PostMessagePayload:
    message: Message
    conversation: Conversation
    event: ChatEvent


@strawberry.input
class ArchiveConversationInput:
    conversation_id: strawberry.ID


@strawberry.type
class ArchiveConversationPayload:
    conversation: Conversation


@strawberry.input
class AttachDocumentInput:
    conversation_id: strawberry.ID = strawberry.field(description="A V2Conversation id.")
    document_id: strawberry.ID
    relevance_score: float | None = strawberry.field(default=None, description="0 to 1.")


@strawberry.input
class DetachDocumentInput:
    conversation_id: strawberry.ID = strawberry.field(description="A V2Conversation id.")
    document_id: strawberry.ID


@strawberry.type
class AttachDocumentPayload:
    conversation: V2Conversation


@strawberry.type
class DetachDocumentPayload:
    conversation: V2Conversation


@strawberry.input
class PinProjectDocumentInput:
    project_id: strawberry.ID
    document_id: strawberry.ID
    pinned: bool | None = True
    notes: str | None = strawberry.field(default=UNSET, description="Left as it is when omitted.")


@strawberry.type
class PinProjectDocumentPayload:
    project: Project
