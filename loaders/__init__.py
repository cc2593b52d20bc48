"""Per-request DataLoaders, one module per entity. ``build_loaders`` makes a fresh set for
every request: aiodataloader binds the running loop, and a per-request cache never serves
one viewer's rows to another."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from gateway.db import Db
from gateway.store import Row
from loaders import (
    cities,
    conversations,
    documents,
    events,
    messages,
    migrations,
    profiles,
    projects,
    typologies,
    zones,
    zonings,
)
from loaders.base import Loader, Scheduler

ById = Loader[UUID, Row | None]


@dataclass(frozen=True)
class Loaders:
    profile: ById
    city: ById
    zoning: ById
    zone: ById
    zones_by_city: Loader[UUID, list[Row]]
    typology: ById
    document: ById
    documents_by_conversation: Loader[tuple[str, UUID], list[Row]]
    documents_by_project: Loader[UUID, list[Row]]
    project: ById
    v1_conversation: ById
    v2_conversation: ById
    v2_conversations_by_project: Loader[conversations.PageKey, list[Row]]
    v2_count_by_project: Loader[UUID, int]
    messages_by_conversation: Loader[messages.PageKey, list[Row]]
    message: Loader[tuple[str, UUID], Row | None]
    message_count: Loader[tuple[str, UUID], int]
    migration: ById
    migration_by_v1: ById
    migration_by_v2: ById
    chat_event: ById


def build_loaders(db: Callable[[], Awaitable[Db]]) -> Loaders:
    scheduler = Scheduler()

    def make(fetch: Any) -> Any:
        return Loader(db, scheduler, fetch)

    return Loaders(
        profile=make(profiles.ProfileById),
        city=make(cities.CityById),
        zoning=make(zonings.ZoningById),
        zone=make(zones.ZoneById),
        zones_by_city=make(zones.ZonesByCity),
        typology=make(typologies.TypologyById),
        document=make(documents.DocumentById),
        documents_by_conversation=make(documents.DocumentsByConversation),
        documents_by_project=make(documents.DocumentsByProject),
        project=make(projects.ProjectById),
        v1_conversation=make(conversations.V1ConversationById),
        v2_conversation=make(conversations.V2ConversationById),
        v2_conversations_by_project=make(conversations.V2ConversationsByProject),
        v2_count_by_project=make(conversations.V2CountByProject),
        messages_by_conversation=make(messages.MessagesByConversation),
        message=make(messages.MessageById),
        message_count=make(messages.MessageCountByConversation),
        migration=make(migrations.MigrationById),
        migration_by_v1=make(migrations.MigrationByV1Conversation),
        migration_by_v2=make(migrations.MigrationByV2Conversation),
        chat_event=make(events.ChatEventById),
    )
