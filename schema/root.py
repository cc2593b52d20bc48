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
from schema.analytics import ChatEvent, ChatEventBucket, ChatEventFilter, ChatEventGroupBy
from schema.common import Connection, Node, declared
from schema.conversation import Conversation, V1Conversation, V2Conversation
from schema.document import Document, Typology
from schema.errors import CodedMaskErrors, NoSuggestions, directive_rule
from schema.execution import EngineExecutionContext
from schema.flags import FeatureFlag, SetFeatureFlagInput, SetFeatureFlagPayload
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
from schema.prepared import RememberAccepted
from schema.profile import Profile
from schema.project import Project
from schema.research import (
    RecordResearchInput,
    RecordResearchPayload,
    ResearchEntry,
    ResearchFilter,
    V1ResearchEntry,
    V2ResearchEntry,
)
from schema.subscription import Subscription
from schema.writes import (
    ArchiveConversationInput,
    ArchiveConversationPayload,
    AttachDocumentInput,
    AttachDocumentPayload,
    CreateProjectInput,
    CreateProjectPayload,
    DetachDocumentInput,
    DetachDocumentPayload,
    PinProjectDocumentInput,
    PinProjectDocumentPayload,
    PostMessageInput,
    PostMessagePayload,
    StartConversationInput,
    StartConversationPayload,
    UpdateProjectInput,
    UpdateProjectPayload,
)


@strawberry.type
class Query:
    @strawberry.field(description="Any object by its global id; null when absent or not visible.")  # type: ignore[untyped-decorator]
    def node(self, id: strawberry.ID) -> Node | None:
        declared()

    @strawberry.field(description="Objects by global id, in order; null where not visible.")  # type: ignore[untyped-decorator]
    def nodes(self, ids: list[strawberry.ID]) -> list[Node | None]:
        declared()

    @strawberry.field(  # type: ignore[untyped-decorator]
        description="Conversations of both stores, latest activity first (NULLs last), "
        "then databaseId descending."
    )
    def conversations(
        self,
        filter: ConversationFilter | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[Conversation]:
        declared()

    @strawberry.field(description="The signed-in user's profile; null when anonymous.")  # type: ignore[untyped-decorator]
    def viewer(self) -> Profile | None:
        declared()

    @strawberry.field(description="Visible projects, newest first.")  # type: ignore[untyped-decorator]
    def projects(
        self,
        filter: ProjectFilter | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[Project]:
        declared()

    @strawberry.field(description="Cities by name; `search` matches a substring, any case.")  # type: ignore[untyped-decorator]
    def cities(
        self,
        search: str | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[City]:
        declared()

    @strawberry.field(description="Documents by title.")  # type: ignore[untyped-decorator]
    def documents(
        self,
        filter: DocumentFilter | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[Document]:
        declared()

    @strawberry.field(description="Analytics events, newest first.")  # type: ignore[untyped-decorator]
    def chat_events(
        self,
        filter: ChatEventFilter | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[ChatEvent]:
        declared()

    @strawberry.field(  # type: ignore[untyped-decorator]
        description="Migration parity: counts per status, v1 conversations not migrated, "
        "failed migrations and parity problems (null when anonymous)."
    )
    def migration_report(self) -> MigrationReport | None:
        declared()

    @strawberry.field(description="Event counts, tokens and cost, grouped as asked.")  # type: ignore[untyped-decorator]
    def chat_event_stats(
        self,
        filter: ChatEventFilter | None = None,
        group_by: list[ChatEventGroupBy] | None = None,
    ) -> list[ChatEventBucket]:
        declared()

    @strawberry.field(  # type: ignore[untyped-decorator]
        description="The viewer's address research of both stores, newest first."
    )
    def research_history(
        self,
        filter: ResearchFilter | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[ResearchEntry]:
        declared()

    @strawberry.field(description="Every feature flag, by key (admins and the service role).")  # type: ignore[untyped-decorator]
    def feature_flags(self) -> list[FeatureFlag]:
        declared()


@strawberry.type
class Mutation:
    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Copy a v1 conversation into v2 in one transaction; idempotent and safe "
        "under concurrent calls (a repeat returns the first result)."
    )
    def migrate_conversation(self, input: MigrateConversationInput) -> MigrateConversationPayload:
        declared()

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Remove the v2 copy of a migrated conversation; v1 is left as it was."
    )
    def revert_migration(self, input: RevertMigrationInput) -> RevertMigrationPayload:
        declared()

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Create a flag or change the fields given (admins and the service role); "
        "every worker applies it from the next request."
    )
    def set_feature_flag(self, input: SetFeatureFlagInput) -> SetFeatureFlagPayload:
        declared()

    @strawberry.mutation(description="A new DRAFT project of the viewer.")  # type: ignore[untyped-decorator]
    def create_project(self, input: CreateProjectInput) -> CreateProjectPayload:
        declared()

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Change the fields given (null clears a nullable one). The first edit of a "
        "DRAFT project sets firstEditedAt and, unless status is given, makes it ACTIVE."
    )
    def update_project(self, input: UpdateProjectInput) -> UpdateProjectPayload:
        declared()

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="A new conversation: in v2 when projectId is given or the viewer's flag "
        "v2_conversations is on (a DRAFT project is made when none is given), else in v1."
    )
    def start_conversation(self, input: StartConversationInput) -> StartConversationPayload:
        declared()

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="A message in the conversation's own store, at its next turn, with one "
        "analytics event tagged by that store. A migrated v1 conversation is read-only "
        "(CONFLICT, with extensions.v2ConversationId)."
    )
    def post_message(self, input: PostMessageInput) -> PostMessagePayload:
        declared()

    @strawberry.mutation(description="isActive false (v2: archivedAt set).")  # type: ignore[untyped-decorator]
    def archive_conversation(self, input: ArchiveConversationInput) -> ArchiveConversationPayload:
        declared()

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        description="Link a document to a v2 conversation (added by the user); twice is a no-op."
    )
    def attach_document(self, input: AttachDocumentInput) -> AttachDocumentPayload:
        declared()

    @strawberry.mutation(description="Unlink a document from a v2 conversation.")  # type: ignore[untyped-decorator]
    def detach_document(self, input: DetachDocumentInput) -> DetachDocumentPayload:
        declared()

    @strawberry.mutation(description="Pin (or unpin) a document of a project, with notes.")  # type: ignore[untyped-decorator]
    def pin_project_document(self, input: PinProjectDocumentInput) -> PinProjectDocumentPayload:
        declared()

    @strawberry.mutation(description="A v2 research entry of the viewer.")  # type: ignore[untyped-decorator]
    def record_research(self, input: RecordResearchInput) -> RecordResearchPayload:
        declared()


TYPES = [
    V1Conversation, V2Conversation, V1Message, V2Message, Zoning, Zone, Typology, Migration,
    V1ResearchEntry, V2ResearchEntry,
]


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
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
        # documents accepted by all of the above run without them next time (schema.prepared)
        RememberAccepted,
    ]
    if not settings.introspection:
        extensions += [DisableIntrospection, NoSuggestions]
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=TYPES,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
        execution_context_class=EngineExecutionContext,
    )


def schema_sdl() -> str:
    return str(build_schema()).rstrip() + "\n"


__all__ = ["ChatEventBucket", "build_schema", "schema_sdl"]
