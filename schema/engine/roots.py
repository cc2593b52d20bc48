"""The root fields of ``Query``: their arguments (checked when compiled) and how their rows
are found (when run). Below the root, every field is a declaration of ``gateway.store.graph``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from graphql import GraphQLField, GraphQLObjectType, get_named_type
from graphql.execution.collect_fields import FieldDetailsList

from gateway.store import analytics as event_store
from gateway.store import conversations as conversation_store
from gateway.store import flags as flag_store
from gateway.store import projects as project_store
from gateway.store import research as research_store
from gateway.store import shared
from gateway.store.graph import (
    ENTITIES,
    NEWEST_ACTIVITY,
    NEWEST_EVENT,
    NEWEST_PROJECT,
    NEWEST_RESEARCH,
)
from resolvers import analytics, chat, documents, flags, migrations, projects, research
from resolvers.acting import acting_user
from resolvers.analytics import to_store_filter as event_filter
from resolvers.conversations import to_store_filter as conversation_filter
from resolvers.ids import cursor_uuid, decode_cursor, from_global_id, optional_id, time_keyset
from schema.common import page_size
from schema.engine.plan import (
    EVENT,
    LISTING,
    MUTATION,
    NODES,
    ROOT_TYPENAME,
    ROWS,
    VALUE,
    VIEWER,
    FieldPlan,
    PageResult,
    RootPlan,
    mixed_page_of,
    page_of,
)

if TYPE_CHECKING:
    from schema.engine.compile import Compiler
    from schema.engine.run import Run

__all__ = [
    "ROOT_FIELDS",
    "ROOT_TYPENAME",
    "compile_mutation",
    "compile_root",
    "compile_subscription",
    "fetch_listing",
    "fetch_rows",
    "fetch_value",
    "fetch_viewer",
    "run_mutation",
]

CONVERSATIONS = ["V1Conversation", "V2Conversation"]
MESSAGES = ["V1Message", "V2Message"]
RESEARCH = ["V1ResearchEntry", "V2ResearchEntry"]
# The root fields of Query this module compiles (a test holds it equal to the schema's).
ROOT_FIELDS = frozenset(
    {"node", "nodes", "viewer", "migrationReport", "chatEventStats", "conversations",
     "projects", "chatEvents", "cities", "documents", "featureFlags", "researchHistory"}
)


def _name_keyset(kind: str, after: str | None) -> tuple[str, Any] | None:
    """The ``(name, id)`` position of an ``after`` cursor of a list ordered by a name."""
    if after is None:
        return None
    name, row_id = decode_cursor(kind, after, 2)
    return name or "", cursor_uuid(row_id)


def compile_root(
    compiler: Compiler, root: FieldPlan, field_def: GraphQLField, details: FieldDetailsList
) -> RootPlan:
    name = root.name
    args = compiler.arguments(field_def, details)

    def checked(check: Any) -> Any:
        return compiler.checked(check, details)

    if name in ("node", "nodes"):
        given = [args["id"]] if name == "node" else list(args["ids"])
        ids = [checked(lambda i=i: from_global_id(i)) for i in given]
        for type_name in dict.fromkeys(t for t, _ in ids):
            root.targets[type_name] = compiler.object_plan(type_name, details)
        return RootPlan(root, NODES, ids=ids, single=name == "node")
    if name == "viewer":
        root.targets["Profile"] = compiler.object_plan("Profile", details)
        return RootPlan(root, VIEWER)
    if name == "featureFlags":
        root.targets["FeatureFlag"] = compiler.object_plan("FeatureFlag", details)
        return RootPlan(root, ROWS)
    if name in ("migrationReport", "chatEventStats"):
        plan = RootPlan(root, VALUE)
        if name == "chatEventStats":
            plan.args["filter"] = checked(lambda: event_filter(args.get("filter")))
            plan.args["groups"] = [g.value for g in args.get("group_by") or []]
        named = get_named_type(field_def.type)
        assert isinstance(named, GraphQLObjectType)
        plan.value = compiler.value_plan(named, details)
        return plan
    limit = checked(lambda: page_size(args.get("first")))
    after = args.get("after")
    plan = RootPlan(root, LISTING)
    if name == "conversations":
        plan.args["filter"] = checked(lambda: conversation_filter(args.get("filter")))
        keyset, kind, types, cursor = (
            checked(lambda: time_keyset(NEWEST_ACTIVITY.cursor, after)),
            NEWEST_ACTIVITY.cursor,
            CONVERSATIONS,
            None,
        )
        plan.parameterless = conversation_store.parameterless(plan.args["filter"], keyset)
    elif name == "projects":
        projects = args.get("filter")
        plan.args["status"] = projects.status.value if projects and projects.status else None
        plan.args["starred"] = projects.starred if projects else None
        keyset, kind, types, cursor = (
            checked(lambda: time_keyset(NEWEST_PROJECT.cursor, after)),
            NEWEST_PROJECT.cursor,
            ["Project"],
            "t.created_at",
        )
        plan.parameterless = project_store.parameterless(
            plan.args["status"], plan.args["starred"], keyset
        )
    elif name == "chatEvents":
        plan.args["filter"] = checked(lambda: event_filter(args.get("filter")))
        keyset, kind, types, cursor = (
            checked(lambda: time_keyset(NEWEST_EVENT.cursor, after)),
            NEWEST_EVENT.cursor,
            ["ChatEvent"],
            "t.created_at",
        )
        plan.parameterless = event_store.parameterless(plan.args["filter"], keyset)
    elif name == "researchHistory":
        wanted = args.get("filter")
        plan.args["source"] = wanted.source.value if wanted and wanted.source else None
        keyset, kind, types, cursor = (
            checked(lambda: time_keyset(NEWEST_RESEARCH.cursor, after)),
            NEWEST_RESEARCH.cursor,
            RESEARCH,
            None,
        )
    elif name == "cities":
        plan.args["search"] = args.get("search")
        keyset, kind, types, cursor = (
            checked(lambda: _name_keyset("city", after)),
            "city",
            ["City"],
            "t.name",
        )
    elif name == "documents":
        documents = args.get("filter")
        if documents is not None:
            plan.args["city_id"] = checked(
                lambda: optional_id(documents.city_id, "City", "cityId")
            )
            plan.args["zone_id"] = checked(
                lambda: optional_id(documents.zone_id, "Zone", "zoneId")
            )
        keyset, kind, types, cursor = (
            checked(lambda: _name_keyset("document", after)),
            "document",
            ["Document"],
            "coalesce(t.title, '')",
        )
    else:
        raise LookupError(f"Query.{name} has no plan")
    root.connection = compiler.connection(
        field_def, details, types, limit=limit, after=keyset, cursor_kind=kind, cursor_sql=cursor
    )
    if len(types) == 1:
        root.connection.target = types[0]
    return plan


async def fetch_listing(run: Run, plan: RootPlan) -> PageResult:
    """The page of a root connection, its rows remembered for the fields below."""
    connection = plan.field.connection
    assert connection is not None
    name, args, limit = plan.field.name, plan.args, connection.limit
    after, read = connection.after, connection.read_limit
    context = run.context
    if name in ("conversations", "projects", "chatEvents", "researchHistory") and (
        context.is_anonymous
    ):
        return PageResult([], False, 0)
    db = await run.db()
    total = None
    if name == "conversations" and len(store_of := conversation_store.sources(args["filter"])) == 1:
        # one store: its rows come with the listing (ending with the cursor's instant)
        type_name = f"{store_of[0].upper()}Conversation"
        rows = await conversation_store.listing_rows(
            db, args["filter"], store_of[0], run.select(type_name), after=after,
            limit=read,
        )
        if connection.counted:
            total = await conversation_store.count(db, args["filter"])
        run.remember(type_name, rows[:limit])  # a row past the page only says that more follow
        return mixed_page_of([(type_name, r, r[-1], r[0]) for r in rows], limit, total)
    if name in ("conversations", "researchHistory"):
        if name == "conversations":
            keys = await conversation_store.listing(
                db, args["filter"], after=after, limit=read
            )
            if connection.counted:
                total = await conversation_store.count(db, args["filter"])
        else:
            keys = await research_store.listing(
                db, user_id=research.whose(context), source=args["source"],
                after=after, limit=read,
            )
        # keys are (store, id, instant): the rows are read by id, as the query selects them
        noun = "Conversation" if name == "conversations" else "ResearchEntry"
        await run.load_keys([(f"{k[0].upper()}{noun}", k[1]) for k in keys[:limit]])
        items = [
            (t, run.found(t, k[1]), k[2], k[1]) for k in keys for t in (f"{k[0].upper()}{noun}",)
        ]
        return mixed_page_of(items, limit, total)
    type_name = connection.target
    columns = run.select(type_name)
    if name == "projects":
        rows = await project_store.page(
            db, status=args["status"], starred=args["starred"], after=after,
            limit=read, columns=columns,
        )
        if connection.counted:
            total = await project_store.count(db, status=args["status"], starred=args["starred"])
    elif name == "chatEvents":
        rows = await event_store.page(
            db, args["filter"], after=after, limit=read, columns=columns
        )
        if connection.counted:
            total = await event_store.count(db, args["filter"])
    elif name == "cities":
        rows = await shared.cities_page(
            db, search=args["search"], after=after, limit=read, columns=columns
        )
        if connection.counted:
            total = await shared.cities_count(db, search=args["search"])
    else:
        city_id, zone_id = args.get("city_id"), args.get("zone_id")
        rows = await shared.documents_page(
            db, city_id=city_id, zone_id=zone_id, after=after, limit=read,
            columns=columns,
        )
        if connection.counted:
            total = await shared.documents_count(db, city_id=city_id, zone_id=zone_id)
    run.remember(type_name, rows)
    return page_of(rows, limit, total)


async def fetch_value(run: Run, plan: RootPlan) -> Any:
    """A value computed by a resolver, written field by field (``ValuePlan``)."""
    context = run.context
    if plan.field.name == "migrationReport":
        return await migrations.report(context)
    return await analytics.chat_event_stats(context, plan.args["filter"], plan.args["groups"])


async def fetch_rows(run: Run, plan: RootPlan) -> list[tuple[str, Any]]:
    """The rows of a root list (``featureFlags``), each with its type."""
    await flags.may_manage(run.context)
    rows = await flag_store.listing(await run.db(), run.select("FeatureFlag"))
    run.remember("FeatureFlag", rows)
    return [("FeatureFlag", row) for row in rows]


async def fetch_viewer(run: Run) -> Any:
    if acting_user(run.context) is None:  # anonymous, or a service token without a user
        return None
    row = await shared.viewer_profile(await run.db(), run.select("Profile"))
    if row is not None:
        run.remember("Profile", [row])
    return row


def visible_to_anonymous(type_name: str) -> bool:
    return ENTITIES[type_name].public


def compile_mutation(
    compiler: Compiler, root: FieldPlan, field_def: GraphQLField, details: FieldDetailsList
) -> RootPlan:
    """A mutation: its input (checked by the mutation itself, before it sends anything) and
    the plan of its payload's selection, which the engine reads like any other."""
    if root.name not in MUTATIONS:
        raise LookupError(f"Mutation.{root.name} has no plan")
    payload = get_named_type(field_def.type).name
    root.targets[payload] = compiler.object_plan(payload, details)
    return RootPlan(root, MUTATION, args=compiler.arguments(field_def, details))


async def _migrate(context: Any, given: Any) -> dict[str, Any]:
    row, already = await migrations.migrate(context, given.conversation_id, given.project_id)
    return {**row, "already_migrated": already}


async def _revert(context: Any, given: Any) -> dict[str, Any]:
    return await migrations.revert(context, given.conversation_id)


async def _set_flag(context: Any, given: Any) -> dict[str, Any]:
    return {"id": await flags.set_flag(context, given)}


async def _create_project(context: Any, given: Any) -> dict[str, Any]:
    return {"id": await projects.create_project(context, given)}


async def _update_project(context: Any, given: Any) -> dict[str, Any]:
    return {"id": await projects.update_project(context, given)}


# What each mutation writes; it returns the row its payload is read from (``PAYLOADS``).
MUTATIONS = {
    "migrateConversation": _migrate,
    "revertMigration": _revert,
    "setFeatureFlag": _set_flag,
    "createProject": _create_project,
    "updateProject": _update_project,
    "startConversation": chat.start_conversation,
    "postMessage": chat.post_message,
    "archiveConversation": chat.archive_conversation,
    "attachDocument": documents.attach_document,
    "detachDocument": documents.detach_document,
    "pinProjectDocument": documents.pin_project_document,
    "recordResearch": research.record_research,
}


async def run_mutation(run: Run, plan: RootPlan) -> tuple[str, Any]:
    """Write, then the payload's row (its type and the values of its declared keys)."""
    row = await MUTATIONS[plan.field.name](run.context, plan.args["input"])
    (payload,) = plan.field.targets
    values = (row.get("id"), *(row.get(c) for c in run.plan.columns.get(payload, [])))
    return payload, tuple(map(_as_keys, values))


def _as_keys(value: Any) -> Any:
    """A payload's value, its uuids (alone or listed) as the keys of rows to read, found by
    their text as the engine reads keys (``select.key``)."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list) and any(isinstance(v, UUID) for v in value):
        return [str(v) if isinstance(v, UUID) else v for v in value]
    return value


# The root fields of Subscription: the types an event's row may have (DESIGN §10).
SUBSCRIPTIONS = {"messageAdded": MESSAGES, "conversationActivity": CONVERSATIONS}


def compile_subscription(
    compiler: Compiler, root: FieldPlan, field_def: GraphQLField, details: FieldDetailsList
) -> RootPlan:
    """A subscription's field: the plan of the row each event names, read as the subscriber;
    ``messageAdded``'s conversation id is checked here (a refused subscription reads nothing)."""
    types = SUBSCRIPTIONS.get(root.name)
    if types is None:
        raise LookupError(f"Subscription.{root.name} has no plan")
    plan = RootPlan(root, EVENT)
    if root.name == "messageAdded":
        given = compiler.arguments(field_def, details)["conversation_id"]
        plan.args["conversation"] = compiler.checked(
            lambda: chat.conversation_of(given), details
        )
    for type_name in types:
        root.targets[type_name] = compiler.object_plan(type_name, details)
    return plan
