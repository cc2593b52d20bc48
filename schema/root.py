"""The root types and the schema factory (extensions depend on settings)."""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.config import StrawberryConfig

from gateway.settings import Settings
from resolvers import analytics, conversations, migrations, nodes, projects, reference
from schema.analytics import ChatEvent, ChatEventBucket, ChatEventFilter, ChatEventGroupBy
from schema.common import Connection, Info, Node
from schema.conversation import Conversation, V1Conversation, V2Conversation
from schema.document import Document, Typology
from schema.errors import CodedMaskErrors, NoSuggestions, directive_rule
from schema.execution import FastExecutionContext, ResolverExecutionContext
from schema.geo import City, Zone, Zoning
from schema.inputs import ConversationFilter, DocumentFilter, ProjectFilter
from schema.message import V1Message, V2Message
from schema.migration import (
    MigrateConversationInput,
    MigrateConversationPayload,
    Migration,
    MigrationReport,
    RevertMigrationInput,
    RevertMigrationPayload,
)
from schema.profile import Profile
from schema.project import Project


@strawberry.type
class Query:
    @strawberry.field(description="Any object by its global id; null when absent or not visible.")  # type: ignore[untyped-decorator]
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return await nodes.node(info, id)

    @strawberry.field(description="Objects by global id, in order; null where not visible.")  # type: ignore[untyped-decorator]
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        return await nodes.nodes(info, list(ids))

    @strawberry.field(  # type: ignore[untyped-decorator]
        description="Conversations of both stores, latest activity first (NULLs last), "
        "then databaseId descending."
    )
    async def conversations(
        self,
        info: Info,
        filter: ConversationFilter | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[Conversation]:
        return await conversations.conversations(info, filter, first, after)

    @strawberry.field(description="The signed-in user's profile; null when anonymous.")  # type: ignore[untyped-decorator]
    async def viewer(self, info: Info) -> Profile | None:
        return await projects.viewer(info)

    @strawberry.field(description="Visible projects, newest first.")  # type: ignore[untyped-decorator]
    async def projects(
        self,
        info: Info,
        filter: ProjectFilter | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[Project]:
        return await projects.projects(info, filter, first, after)

    @strawberry.field(description="Cities by name; `search` matches a substring, any case.")  # type: ignore[untyped-decorator]
    async def cities(
        self,
        info: Info,
        search: str | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[City]:
        return await reference.cities(info, search, first, after)

    @strawberry.field(description="Documents by title.")  # type: ignore[untyped-decorator]
    async def documents(
        self,
        info: Info,
        filter: DocumentFilter | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[Document]:
        return await reference.documents(info, filter, first, after)

    @strawberry.field(description="Analytics events, newest first.")  # type: ignore[untyped-decorator]
    async def chat_events(
        self,
        info: Info,
        filter: ChatEventFilter | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[ChatEvent]:
        return await analytics.chat_events(info, filter, first, after)

    @strawberry.field(  # type: ignore[untyped-decorator]
        description="Migration parity: counts per status, v1 conversations not migrated, "
        "failed migrations and parity problems (null when anonymous)."
    )
    async def migration_report(self, info: Info) -> MigrationReport | None:
        return await migrations.report(info.context)

    @strawberry.field(description="Event counts, tokens and cost, grouped as asked.")  # type: ignore[untyped-decorator]
    async def chat_event_stats(
        self,
        info: Info,
        filter: ChatEventFilter | None = None,
        group_by: list[ChatEventGroupBy] | None = None,
    ) -> list[ChatEventBucket]:
        return await analytics.chat_event_stats(info, filter, group_by)


@strawberry.type
class Mutation:
    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Copy a v1 conversation into v2 in one transaction; idempotent and safe "
        "under concurrent calls (a repeat returns the first result)."
    )
    async def migrate_conversation(
        self, info: Info, input: MigrateConversationInput
    ) -> MigrateConversationPayload:
        row, already = await migrations.migrate(
            info.context, input.conversation_id, input.project_id
        )
        return MigrateConversationPayload(
            migration=Migration.from_row(row), already_migrated=already
        )

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Remove the v2 copy of a migrated conversation; v1 is left as it was."
    )
    async def revert_migration(
        self, info: Info, input: RevertMigrationInput
    ) -> RevertMigrationPayload:
        row = await migrations.revert(info.context, input.conversation_id)
        return RevertMigrationPayload(migration=Migration.from_row(row))


TYPES = [V1Conversation, V2Conversation, V1Message, V2Message, Zoning, Zone, Typology, Migration]


def build_schema(settings: Settings | None = None, *, reference: bool = False) -> strawberry.Schema:
    """The schema. With ``reference``, queries run through the per-field resolvers that
    mutation payloads still use, instead of the read engine: the tests' second opinion until
    the payloads move to the engine too (then the resolvers go)."""
    settings = settings or Settings()
    limits = settings.limits
    # The limit rules are built once: the validation cache is keyed by the rule classes, so
    # rules made per request (as strawberry's limiter extensions do) would never hit it.
    rules = [
        depth_rule(limits.max_depth, None),
        alias_rule(limits.max_aliases),
        directive_rule(limits.max_directives),
    ]
    # Factories, not instances: strawberry builds fresh extensions for every request (the
    # parser and validation LRU caches live at module level and are shared).
    extensions: list[Callable[[], SchemaExtension]] = [
        CodedMaskErrors,
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: AddValidationRules(rules),
    ]
    if not settings.introspection:
        extensions += [DisableIntrospection, NoSuggestions]
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=TYPES,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
        execution_context_class=ResolverExecutionContext if reference else FastExecutionContext,
    )


def schema_sdl() -> str:
    return str(build_schema()).rstrip() + "\n"


__all__ = ["ChatEventBucket", "build_schema", "schema_sdl"]
