"""SQL plans: a query over the conversation graph answered by one statement that builds its JSON.

The resolver path fetches rows with a handful of batched statements, makes an object per row
and completes every field in Python; for a page of 50 conversations with their messages that
is ~1,800 field completions, most of the CPU of the request. PostGraphile's answer is to let
PostgreSQL build the response: one statement whose ``json_build_object`` tree mirrors the
selection. This module does the same for the graph's hot shapes: ``Query.conversations``,
``node`` and ``nodes``, with the conversation, message, project, document, geography, profile
and migration fields below them. It runs in the request's transaction, as the viewer (RLS
applies as on the resolver path), after parsing, validation and the limits, and before any
resolver.

Every value is rendered as the resolver path renders it (global ids and cursors are base64url
without padding, instants ``isoformat()`` in UTC, decimals as text, enums by name), and each
list keeps the resolver path's order. ``tests/test_sql_plans.py`` runs a corpus of queries, and
random selections, on both paths and asserts equal responses.

Anything this module does not know (another root field, an argument value the resolver would
reject, ``@defer``, an unknown field, an anonymous viewer) makes ``compile_plan`` return None
and the request takes the resolver path, which also produces the errors. A non-null field that
comes back null (a project hidden by RLS, a value outside its enum) would be an error on the
resolver path: SQL renders it as ``NULL_IN_NON_NULL`` and such a response is answered by the
resolver path instead, so errors and null propagation stay the resolver path's. The JSON text
PostgreSQL built goes into the HTTP response as it is (``orjson.Fragment``): it is neither
parsed nor encoded again in Python.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson
from graphql import (
    GraphQLError,
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    get_named_type,
    is_abstract_type,
    is_non_null_type,
)
from graphql.execution.collect_fields import (
    FieldDetailsList,
    FragmentDetails,
    GroupedFieldSet,
    collect_subfields,
)
from graphql.execution.values import get_argument_values
from sqlalchemy import TextClause, text
from strawberry.utils.str_converters import to_snake_case

from gateway.context import Context
from gateway.errors import GatewayError
from gateway.store import conversations as conversation_store
from gateway.store import messages as message_store
from resolvers.conversations import to_store_filter
from schema.common import page_size
from schema.ids import from_global_id, time_keyset
from schema.inputs import ConversationFilter
from schema.message import MessageRole
from schema.migration import MigrationStatus
from schema.project import ProjectStatus

# ``json_build_object`` takes at most 100 arguments.
MAX_KEYS = 50
# A larger statement is left to the resolvers: every distinct plan becomes a prepared statement
# (and a cached plan) on each pooled connection, so their size is what bounds that memory.
MAX_PLAN_SQL = 64 * 1024

# What a non-null field that came back null is rendered as. Its presence in the response sends
# the request to the resolver path (so a value that happens to equal it only costs speed).
# No colon: ``text()`` would read ``:word`` as a bind parameter.
NULL_IN_NON_NULL = "mwplu-gateway/null-in-a-non-null-field/5b1e0c7a"
_NULL_IN_NON_NULL_BYTES = NULL_IN_NON_NULL.encode()

UUID_TEXT_LENGTH = len("00000000-0000-0000-0000-000000000000")
GRAPHQL_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")

# SQLAlchemy ``text()`` bind parameters (the pattern it uses itself).
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


class Unsupported(Exception):
    """A selection or an argument this module does not plan; the resolver path takes it."""


class _NeedsRow(Exception):
    """A field that needs more of a row than its id (``Planner.node_fields(id_only=True)``)."""


Out = str  # an SQL expression of the JSON value of a field


@dataclass(frozen=True)
class Plan:
    sql: str
    params: dict[str, object]
    # Built once: ``text()`` scans the whole statement for bind parameters.
    statement: TextClause = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "statement", text(self.sql))

    async def run(self, context: Context) -> orjson.Fragment | None:
        """The response data as SQL rendered it (``orjson`` writes it into the response as is),
        or None when a non-null field came back null."""
        db = await context.db()
        # UTF-8 bytes (``convert_to``): decoding a few hundred KB of accented text into a str,
        # only for orjson to encode it back, cost R2 about a millisecond of the worker's CPU.
        raw: bytes = await db.scalar(self.statement, self.params)
        if _NULL_IN_NON_NULL_BYTES in raw:
            return None
        return orjson.Fragment(raw)


def non_null(sql: str, json: bool = False) -> str:
    """``sql`` of a non-null field that may still come back NULL (a hidden row, a value
    outside its enum), with NULL rendered as ``NULL_IN_NON_NULL``."""
    marker = f"'\"{NULL_IN_NON_NULL}\"'::json" if json else f"'{NULL_IN_NON_NULL}'"
    return f"coalesce({sql}, {marker})"


# --- how values are rendered (exactly as the resolver path renders them) ---------------------


def iso(expr: str) -> str:
    """``datetime.isoformat()`` of a timestamptz (asyncpg returns UTC datetimes; the
    fraction is left out when zero, as Python does). Colons are escaped for ``text()``."""
    return (
        f"(replace(to_char(({expr}) AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24\\:MI\\:SS.US'), '.000000', '') || '+00\\:00')"
    )


def base64url(expr: str) -> str:
    """``base64.urlsafe_b64encode`` without padding of the UTF-8 of ``expr`` (PostgreSQL
    breaks base64 lines at 76 characters). ``replace`` rather than ``translate`` or ``rtrim``:
    those walk the string a character at a time (encoding-aware), and were an eighth of R2's
    time in Postgres; the replaces cost a third of that. ``=`` appears in base64 only as
    padding."""
    b64 = f"encode(convert_to({expr}, 'UTF8'), 'base64')"
    return f"replace(replace(replace(replace({b64}, E'\\n', ''), '=', ''), '+', '-'), '/', '_')"


def global_id(type_name: str, id_expr: str) -> str:
    """``schema.ids.to_global_id`` of a uuid column (every table's key is one).

    ``Type:uuid`` is one base64 line, padded only when its length is not a multiple of 3, and
    its base64 has no ``+`` or ``/``: those are the 6-bit values 62 and 63, and in ASCII text
    only the last 6 bits of a byte can reach them, for ``>``, ``?``, ``~`` and DEL, none of
    which a GraphQL name, ``:`` or a uuid's text contains."""
    if not GRAPHQL_NAME.fullmatch(type_name):
        raise ValueError(f"not a GraphQL type name: {type_name!r}")
    length = len(type_name) + 1 + UUID_TEXT_LENGTH
    out = f"encode(convert_to('{type_name}:' || ({id_expr})::text, 'UTF8'), 'base64')"
    return f"replace({out}, '=', '')" if length % 3 else out


def cursor(kind: str, at_expr: str, id_expr: str) -> str:
    """``schema.ids.encode_cursor(kind, at, id)``: the orjson list, base64url."""
    return base64url(
        f"'[\"{kind}\",' || coalesce('\"' || {iso(at_expr)} || '\"', 'null') || ',\"' || "
        f"({id_expr})::text || '\"]'"
    )


def enum_name(expr: str, enum: type[Enum]) -> str:
    """The GraphQL name of a stored value of ``enum`` (the member's name, as strawberry
    serialises it); NULL for a value outside the enum."""
    cases = " ".join(f"WHEN '{m.value}' THEN '{m.name}'" for m in enum)
    return f"(CASE {expr} {cases} END)"


def literal(value: str) -> str:
    return f"CAST('{value}' AS text)"


PLAIN, TIME, DECIMAL, FLOAT, REQUIRED = "plain", "time", "decimal", "float", "required"

_CONVERSATION = {
    "title": ("{a}.title", PLAIN),
    "isActive": ("{a}.is_active", PLAIN),
    "lastMessageAt": ("{a}.last_message_at", TIME),
    "createdAt": ("{a}.created_at", TIME),
    "messageCount": ("coalesce({a}.message_count, 0)", PLAIN),
}
_MESSAGE = {
    "role": (enum_name("{a}.role", MessageRole), REQUIRED),
    "text": ("{a}.message", REQUIRED),
    "conversationTurn": ("{a}.conversation_turn", PLAIN),
    "createdAt": ("{a}.created_at", TIME),
    "metadata": ("{a}.metadata", PLAIN),
}

# Scalar fields per object type: SQL over the row alias ``{a}`` and how to render it.
SCALARS: dict[str, dict[str, tuple[str, str]]] = {
    "V1Conversation": _CONVERSATION,
    "V2Conversation": {
        **_CONVERSATION,
        "conversationType": ("{a}.conversation_type", PLAIN),
        "contextMetadata": ("{a}.context_metadata", PLAIN),
        "archivedAt": ("{a}.archived_at", TIME),
        "documentCount": ("coalesce({a}.document_count, 0)", PLAIN),
        "updatedAt": ("{a}.updated_at", TIME),
    },
    "V1Message": _MESSAGE,
    "V2Message": {
        **_MESSAGE,
        "messageType": ("{a}.message_type", PLAIN),
        "intentDetected": ("{a}.intent_detected", PLAIN),
        "confidenceScore": ("{a}.confidence_score", FLOAT),
        "aiModelUsed": ("{a}.ai_model_used", PLAIN),
        "searchContext": ("{a}.search_context", PLAIN),
    },
    "Profile": {
        "email": ("{a}.email", PLAIN),
        "fullName": ("{a}.full_name", PLAIN),
        "isAdmin": ("coalesce({a}.is_admin, false)", PLAIN),
        "createdAt": ("{a}.created_at", TIME),
    },
    "Document": {
        "title": ("{a}.title", PLAIN),
        "url": ("{a}.url", PLAIN),
        "createdAt": ("{a}.created_at", TIME),
    },
    "City": {"name": ("{a}.name", PLAIN), "inseeCode": ("{a}.insee_code", PLAIN)},
    "Zoning": {"name": ("{a}.name", PLAIN)},
    "Zone": {"code": ("{a}.code", PLAIN), "label": ("{a}.label", PLAIN)},
    "Typology": {"name": ("{a}.name", PLAIN)},
    "Project": {
        "name": ("{a}.name", PLAIN),
        "description": ("{a}.description", PLAIN),
        "projectType": ("{a}.project_type", PLAIN),
        "mainAddress": ("{a}.main_address", PLAIN),
        "geoLon": ("{a}.geo_lon", DECIMAL),
        "geoLat": ("{a}.geo_lat", DECIMAL),
        "color": ("{a}.color", PLAIN),
        "icon": ("{a}.icon", PLAIN),
        "starred": ("coalesce({a}.starred, false)", PLAIN),
        "position": ("{a}.position", PLAIN),
        "status": (enum_name("coalesce({a}.status, 'draft')", ProjectStatus), REQUIRED),
        "pluAlertEnabled": ("coalesce({a}.plu_alert_enabled, false)", PLAIN),
        "pluLastCheckAt": ("{a}.plu_last_check_at", TIME),
        "pluCheckFrequency": ("{a}.plu_check_frequency", PLAIN),
        "createdAt": ("{a}.created_at", TIME),
        "updatedAt": ("{a}.updated_at", TIME),
        "firstEditedAt": ("{a}.first_edited_at", TIME),
        "metadata": ("{a}.metadata", PLAIN),
    },
    "Migration": {
        "status": (enum_name("{a}.migration_status", MigrationStatus), REQUIRED),
        "migratedAt": ("{a}.migrated_at", TIME),
        "revertedAt": ("{a}.reverted_at", TIME),
        "errorMessage": ("{a}.error_message", PLAIN),
    },
}

# The table a row of each object type is read from by id.
TABLES = {
    "V1Message": "chat_messages",
    "V2Message": "v2_messages",
    "Profile": "profiles",
    "Document": "documents",
    "City": "cities",
    "Zoning": "zonings",
    "Zone": "zones",
    "Typology": "typologies",
    "Project": "v2_projects",
    "Migration": "migration_tracking",
}


def render(expr: str, how: str) -> str:
    if how == TIME:
        return iso(expr)
    if how == DECIMAL:
        return f"({expr})::text"
    if how == FLOAT:
        return f"({expr})::float8"
    return expr


class Planner:
    """Builds one statement for a query's root fields (``compile_plan``)."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        variable_values: Any,
        operation: OperationDefinitionNode,
        viewer_is_anonymous: bool,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variable_values = variable_values
        self.operation = operation
        self.anonymous = viewer_is_anonymous
        self.params: dict[str, object] = {}
        self.aliases = 0
        # Row alias of each connection page -> whether a field reads the ids of its rows
        # (``page_ids``, an array over the page).
        self.pages: dict[str, bool] = {}

    # -- plumbing -------------------------------------------------------------------------

    def alias(self) -> str:
        self.aliases += 1
        return f"_q{self.aliases}"

    def param(self, value: object) -> str:
        if type(value) is int:
            # Page sizes (checked, 1..101) are written into the statement: a statement with
            # no other parameter is then planned once per connection (its prepared statement)
            # rather than given a fresh custom plan on every execution.
            return str(value)
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def adopt(self, sql: str, params: dict[str, object]) -> str:
        """A store statement with its parameters renamed into this plan's."""
        names = {name: self.param(value) for name, value in params.items()}
        return _BIND.sub(lambda m: names[m.group(1)], sql)

    def subfields(self, type_: GraphQLObjectType, details: FieldDetailsList) -> GroupedFieldSet:
        collected = collect_subfields(
            self.schema, self.fragments, self.variable_values, self.operation, type_, details
        )
        if collected.new_defer_usages or any(
            d.defer_usage is not None or d.fragment_variable_values is not None
            for ds in collected.grouped_field_set.values()
            for d in ds
        ):
            raise Unsupported("@defer or fragment arguments")
        return collected.grouped_field_set

    def arguments(self, field_def: GraphQLField, details: FieldDetailsList) -> dict[str, Any]:
        try:
            return get_argument_values(field_def, details[0].node, self.variable_values)
        except GraphQLError as error:
            raise Unsupported("argument error") from error

    def object(
        self,
        type_: GraphQLObjectType,
        details: FieldDetailsList,
        field: Callable[[str, FieldDetailsList, GraphQLField], Out],
    ) -> Out:
        """``json_build_object`` of the selection of ``details`` on ``type_``."""
        pairs: list[str] = []
        for key, field_details in self.subfields(type_, details).items():
            name = field_details[0].node.name.value
            if name == "__typename":
                out = literal(type_.name)
            else:
                field_def = type_.fields.get(name)
                if field_def is None:
                    raise Unsupported(f"{type_.name}.{name}")
                out = field(name, field_details, field_def)
            pairs.append(f"'{key}', {out}")
        if len(pairs) > MAX_KEYS:
            raise Unsupported("too many keys")
        return f"json_build_object({', '.join(pairs)})"

    def node_fields(
        self, type_: GraphQLObjectType, a: str, details: FieldDetailsList, *, id_only: bool = False
    ) -> Out:
        """The selection on a row ``a`` of the object type ``type_``. With ``id_only``, ``a``
        is the SQL of a row's id and nothing else of the row is known (``_NeedsRow`` for a
        field that needs more)."""
        name = type_.name
        scalars = SCALARS[name]
        relation = getattr(self, f"_{name}", None)
        row_id = a if id_only else f"{a}.id"

        def field(field_name: str, fd: FieldDetailsList, field_def: GraphQLField) -> Out:
            if field_name == "id":
                return global_id(name, row_id)
            if field_name == "databaseId":
                return row_id
            if field_name == "source":
                return literal(name[:2])
            if id_only:
                raise _NeedsRow(field_name)
            spec = scalars.get(field_name)
            if spec is not None:
                expr, how = spec
                sql = render(expr.format(a=a), how)
                return non_null(sql) if how == REQUIRED else sql
            if relation is None:
                raise Unsupported(f"{name}.{field_name}")
            return relation(a, field_name, fd, field_def)  # type: ignore[no-any-return]

        return self.object(type_, details, field)

    def object_type(self, name: str) -> GraphQLObjectType:
        type_ = self.schema.type_map[name]
        assert isinstance(type_, GraphQLObjectType)
        return type_

    def field_object(self, field_def: GraphQLField) -> GraphQLObjectType:
        """The object type a field returns (through lists and non-null)."""
        return self.object_type(get_named_type(field_def.type).name)

    def runtime_types(self, field_def: GraphQLField, names: tuple[str, ...]) -> list[str]:
        """The object types a field's value may take, among ``names`` (the store branches)."""
        type_: GraphQLNamedType = get_named_type(field_def.type)
        if is_abstract_type(type_):
            possible = {t.name for t in self.schema.get_possible_types(type_)}
            return [n for n in names if n in possible]
        return [n for n in names if n == type_.name]

    def lookup(
        self,
        type_name: str,
        key: str,
        fd: FieldDetailsList,
        *,
        column: str = "id",
        wrap: str = "{}",
    ) -> Out:
        """``wrap`` of the JSON of the row of ``TABLES[type_name]`` whose ``column`` is ``key``
        (NULL when there is none); no subquery at all for a NULL key (a first message's
        replyTo, a missing document)."""
        b = self.alias()
        built = wrap.format(self.node_fields(self.object_type(type_name), b, fd))
        return (
            f"(CASE WHEN {key} IS NOT NULL THEN "
            f"(SELECT {built} FROM {TABLES[type_name]} {b} WHERE {b}.{column} = {key}) END)"
        )

    def by_id(
        self, type_name: str, key: str, fd: FieldDetailsList, field_def: GraphQLField
    ) -> Out:
        """The row of ``TABLES[type_name]`` whose id is ``key``, or null."""
        sql = self.lookup(type_name, key, fd)
        return non_null(sql, json=True) if is_non_null_type(field_def.type) else sql

    def one_document(self, key: str, fd: FieldDetailsList) -> Out:
        """``[document]`` of a v1 ``document_id``, or ``[]`` (a v1 conversation's or
        message's documents)."""
        listed = self.lookup("Document", key, fd, wrap="json_build_array({})")
        return f"coalesce({listed}, '[]'::json)"

    def rows(
        self, type_name: str, from_sql: str, order: str, fd: FieldDetailsList
    ) -> Out:
        """A JSON list (never null) of the rows ``{b}`` of ``from_sql`` in ``order``."""
        b = self.alias()
        built = self.node_fields(self.object_type(type_name), b, fd)
        return (
            f"coalesce((SELECT json_agg({built} ORDER BY {order.format(b=b)}) "
            f"FROM {from_sql.format(b=b)}), '[]'::json)"
        )

    def rows_of_ids(self, ids: str, fd: FieldDetailsList, type_name: str) -> Out:
        """Rows of ``type_name`` in the order of the uuid array ``ids``; missing ids skipped.
        One primary-key lookup per id (``OFFSET 0`` keeps the planner from hashing the whole
        table for each message), and no subquery at all for an empty or NULL array."""
        out = self.rows(
            type_name,
            f"unnest({ids}) WITH ORDINALITY _ids(id, ord) CROSS JOIN LATERAL "
            f"(SELECT * FROM {TABLES[type_name]} _t WHERE _t.id = _ids.id OFFSET 0) {{b}}",
            "_ids.ord",
            fd,
        )
        return f"(CASE WHEN cardinality({ids}) > 0 THEN {out} ELSE '[]'::json END)"

    def connection(
        self,
        field_def: GraphQLField,
        details: FieldDetailsList,
        *,
        rows_sql: str,
        order: str,
        limit: int,
        node: Callable[[str, GraphQLField, FieldDetailsList], Out],
        cursor_of: Callable[[str], str],
        count_sql: str,
    ) -> Out:
        """A Relay connection over ``rows_sql`` (``limit + 1`` rows in ``order`` over ``r``):
        edges, pageInfo and totalCount as ``schema.common.build_connection`` makes them.
        ``GROUP BY ()``: one row whatever is selected (a lone totalCount aggregates nothing)."""
        x = self.alias()
        self.pages[x] = False
        limit_param = self.param(limit)

        def field(name: str, fd: FieldDetailsList, sub_def: GraphQLField) -> Out:
            if name == "totalCount":
                return f"({count_sql})"
            if name == "pageInfo":
                return self.object(self.field_object(sub_def), fd, page_info)
            if name == "edges":
                edge = self.object(self.field_object(sub_def), fd, edge_field)
                return (
                    f"coalesce(json_agg({edge} ORDER BY {x}.rn) "
                    f"FILTER (WHERE {x}.rn <= {limit_param}), '[]'::json)"
                )
            raise Unsupported(name)

        def page_info(name: str, fd: FieldDetailsList, sub_def: GraphQLField) -> Out:
            if name == "hasNextPage":
                return f"(count(*) > {limit_param})"
            if name == "startCursor":
                return f"max({cursor_of(x)}) FILTER (WHERE {x}.rn = 1)"
            if name == "endCursor":
                return f"max({cursor_of(x)}) FILTER (WHERE {x}.rn = least({x}.n, {limit_param}))"
            raise Unsupported(name)

        def edge_field(name: str, fd: FieldDetailsList, sub_def: GraphQLField) -> Out:
            if name == "cursor":
                return cursor_of(x)
            if name == "node":
                return node(x, sub_def, fd)
            raise Unsupported(name)

        built = self.object(self.field_object(field_def), details, field)
        page_ids = ", array_agg(r.id) OVER () AS page_ids" if self.pages[x] else ""
        return (
            f"(SELECT {built} FROM (SELECT r.*, row_number() OVER (ORDER BY {order}) AS rn, "
            f"count(*) OVER () AS n{page_ids} FROM ({rows_sql}) r) {x} GROUP BY ())"
        )

    def branches(
        self, a: str, field_def: GraphQLField, fd: FieldDetailsList, names: tuple[str, str]
    ) -> Out:
        """A v1/v2 row ``a`` (``a.source``) as the object type of its store."""
        built = {
            n: self.node_fields(self.object_type(n), a, fd)
            for n in self.runtime_types(field_def, names)
        }
        if not built:
            raise Unsupported("no runtime type")
        if len(built) == 1:
            return next(iter(built.values()))
        v1, v2 = built.values()
        return f"(CASE WHEN {a}.source = 'v1' THEN {v1} ELSE {v2} END)"

    # -- root fields ------------------------------------------------------------------------

    def root(self, root_type: GraphQLObjectType, fields: GroupedFieldSet) -> Out:
        pairs: list[str] = []
        for key, details in fields.items():
            name = details[0].node.name.value
            if name not in ("conversations", "node", "nodes") or self.anonymous:
                raise Unsupported(f"Query.{name}")
            field_def = root_type.fields[name]
            pairs.append(f"'{key}', {getattr(self, name)(field_def, details)}")
        if not pairs or len(pairs) > MAX_KEYS:
            raise Unsupported("root")
        return f"SELECT convert_to(json_build_object({', '.join(pairs)})::text, 'UTF8')"

    def conversations(self, field_def: GraphQLField, details: FieldDetailsList) -> Out:
        args = self.arguments(field_def, details)
        raw_filter = args.get("filter")
        try:
            limit = page_size(args.get("first"))
            keyset = time_keyset("conversation", args.get("after"))
            criteria = to_store_filter(
                ConversationFilter(**{to_snake_case(k): v for k, v in raw_filter.items()})
                if raw_filter is not None
                else None
            )
        except GatewayError as error:
            raise Unsupported("bad argument") from error
        built = conversation_store.page_sql(criteria, after=keyset, limit=limit + 1)
        if built is None:
            raise Unsupported("empty listing")  # rare; the resolver path answers it
        count_sql, count_params = conversation_store.count_sql(criteria)
        sources = ("v1", "v2") if criteria.source is None else (criteria.source,)
        names = tuple(f"{s.upper()}Conversation" for s in sources)

        def node(x: str, sub_def: GraphQLField, fd: FieldDetailsList) -> Out:
            return self.branches(x, sub_def, fd, names)  # type: ignore[arg-type]

        return self.connection(
            field_def,
            details,
            rows_sql=self.adopt(*built),
            order="r.last_message_at DESC NULLS LAST, r.id DESC",
            limit=limit,
            node=node,
            cursor_of=lambda x: cursor("conversation", f"{x}.last_message_at", f"{x}.id"),
            count_sql=self.adopt(count_sql, count_params),
        )

    def node(self, field_def: GraphQLField, details: FieldDetailsList) -> Out:
        return self.one_node(self.arguments(field_def, details)["id"], details)

    def nodes(self, field_def: GraphQLField, details: FieldDetailsList) -> Out:
        ids = self.arguments(field_def, details)["ids"]
        if len(ids) > MAX_KEYS:
            raise Unsupported("too many ids")
        items = [self.one_node(i, details) for i in ids]
        return f"json_build_array({', '.join(items)})" if items else "'[]'::json"

    def one_node(self, global_id_: str, details: FieldDetailsList) -> Out:
        """``Query.node``: the object of a global id as its type, null when not visible."""
        try:
            type_name, database_id = from_global_id(global_id_)
        except GatewayError as error:
            raise Unsupported("malformed id") from error
        if type_name in ("V1Conversation", "V2Conversation"):
            selects = {"V1": conversation_store.V1_SELECT, "V2": conversation_store.V2_SELECT}
            table = f"({selects[type_name[:2]]})"
        elif type_name in TABLES:
            table = TABLES[type_name]
        else:
            raise Unsupported(type_name)
        b = self.alias()
        built = self.node_fields(self.object_type(type_name), b, details)
        return f"(SELECT {built} FROM {table} {b} WHERE {b}.id = {self.param(database_id)})"

    # -- relations per object type (``_<TypeName>``) ------------------------------------------

    def _conversation(
        self, source: str, a: str, name: str, fd: FieldDetailsList, field_def: GraphQLField
    ) -> Out:
        if name == "owner":
            return self.by_id("Profile", f"{a}.user_id", fd, field_def)
        if name == "messages":
            return self.messages(source, a, field_def, fd)
        if name == "documents":
            if source == "v1":
                return self.one_document(f"{a}.document_id", fd)
            return self.rows(
                "Document",
                "v2_conversation_documents _l JOIN documents {b} ON {b}.id = _l.document_id "
                f"WHERE _l.conversation_id = {a}.id",
                "_l.added_at NULLS FIRST, {b}.id",
                fd,
            )
        raise Unsupported(name)

    def _V1Conversation(
        self, a: str, name: str, fd: FieldDetailsList, field_def: GraphQLField
    ) -> Out:
        if name == "document":
            return self.by_id("Document", f"{a}.document_id", fd, field_def)
        if name == "migration":
            return self.lookup("Migration", f"{a}.id", fd, column="v1_conversation_id")
        return self._conversation("v1", a, name, fd, field_def)

    def _V2Conversation(
        self, a: str, name: str, fd: FieldDetailsList, field_def: GraphQLField
    ) -> Out:
        if name == "project":
            return self.by_id("Project", f"{a}.project_id", fd, field_def)
        return self._conversation("v2", a, name, fd, field_def)

    def messages(
        self, source: str, a: str, field_def: GraphQLField, details: FieldDetailsList
    ) -> Out:
        args = self.arguments(field_def, details)
        try:
            limit = page_size(args.get("first"))
            keyset = time_keyset("message", args.get("after"))
        except GatewayError as error:
            raise Unsupported("bad argument") from error
        table = message_store.TABLES[source]
        m = self.alias()
        predicate, params = message_store.after_predicate(keyset, m)
        where = f"AND {self.adopt(predicate, params)}" if predicate else ""
        rows_sql = (
            f"SELECT * FROM {table} {m} WHERE {m}.conversation_id = {a}.id {where} "
            f"ORDER BY {m}.created_at, {m}.id LIMIT {self.param(limit + 1)}"
        )
        type_name = f"{source.upper()}Message"

        def node(x: str, sub_def: GraphQLField, fd: FieldDetailsList) -> Out:
            return self.node_fields(self.object_type(type_name), x, fd)

        return self.connection(
            field_def,
            details,
            rows_sql=rows_sql,
            order="r.created_at, r.id",
            limit=limit,
            node=node,
            cursor_of=lambda x: cursor("message", f"{x}.created_at", f"{x}.id"),
            count_sql=f"SELECT count(*)::int FROM {table} WHERE conversation_id = {a}.id",
        )

    def _message(
        self, source: str, a: str, name: str, fd: FieldDetailsList, field_def: GraphQLField
    ) -> Out:
        if name == "author":
            profile = self.by_id("Profile", f"{a}.user_id", fd, field_def)
            return f"(CASE WHEN {a}.role = 'user' THEN {profile} END)"
        if name == "replyTo":
            return self.reply_to(f"{source.upper()}Message", a, fd, field_def)
        raise Unsupported(name)

    def reply_to(
        self, type_name: str, a: str, fd: FieldDetailsList, field_def: GraphQLField
    ) -> Out:
        """The message a message ``a`` replies to. Replies usually answer a message of the same
        page, which the viewer sees: when only the target's id is selected, such a target
        needs no lookup (~450 of them in R2, an eighth of its time in Postgres)."""
        key = f"{a}.reply_to_message_id"
        lookup = self.by_id(type_name, key, fd, field_def)
        if a not in self.pages:
            return lookup
        try:
            known = self.node_fields(self.object_type(type_name), key, fd, id_only=True)
        except _NeedsRow:
            return lookup
        self.pages[a] = True
        return f"(CASE WHEN {key} = ANY({a}.page_ids) THEN {known} ELSE {lookup} END)"

    def _V1Message(self, a: str, name: str, fd: FieldDetailsList, field_def: GraphQLField) -> Out:
        if name == "documents":
            return self.one_document(f"{a}.document_id", fd)
        return self._message("v1", a, name, fd, field_def)

    def _V2Message(self, a: str, name: str, fd: FieldDetailsList, field_def: GraphQLField) -> Out:
        if name == "documents":
            return self.rows_of_ids(f"{a}.referenced_documents", fd, "Document")
        if name == "referencedZones":
            return self.rows_of_ids(f"{a}.referenced_zones", fd, "Zone")
        if name == "referencedCities":
            return self.rows_of_ids(f"{a}.referenced_cities", fd, "City")
        return self._message("v2", a, name, fd, field_def)

    def _Document(self, a: str, name: str, fd: FieldDetailsList, field_def: GraphQLField) -> Out:
        related = {"city": "City", "zoning": "Zoning", "zone": "Zone", "typology": "Typology"}
        if name in related:
            return self.by_id(related[name], f"{a}.{name}_id", fd, field_def)
        raise Unsupported(name)

    def _City(self, a: str, name: str, fd: FieldDetailsList, field_def: GraphQLField) -> Out:
        if name == "zones":
            return self.rows(
                "Zone", f"zones {{b}} WHERE {{b}}.city_id = {a}.id", "{b}.code, {b}.id", fd
            )
        raise Unsupported(name)

    def _Zoning(self, a: str, name: str, fd: FieldDetailsList, field_def: GraphQLField) -> Out:
        if name == "city":
            return self.by_id("City", f"{a}.city_id", fd, field_def)
        raise Unsupported(name)

    def _Zone(self, a: str, name: str, fd: FieldDetailsList, field_def: GraphQLField) -> Out:
        if name in ("city", "zoning"):
            return self.by_id(name.capitalize(), f"{a}.{name}_id", fd, field_def)
        raise Unsupported(name)

    def _Project(self, a: str, name: str, fd: FieldDetailsList, field_def: GraphQLField) -> Out:
        if name == "owner":
            return self.by_id("Profile", f"{a}.user_id", fd, field_def)
        if name == "mainCity":
            return self.by_id("City", f"{a}.main_city_id", fd, field_def)
        if name == "mainZone":
            return self.by_id("Zone", f"{a}.main_zone_id", fd, field_def)
        if name == "documents":
            return self.rows(
                "Document",
                "v2_project_documents _l JOIN documents {b} ON {b}.id = _l.document_id "
                f"WHERE _l.project_id = {a}.id",
                "coalesce(_l.pinned, false) DESC, _l.added_at, {b}.id",
                fd,
            )
        raise Unsupported(name)

    def _Migration(self, a: str, name: str, fd: FieldDetailsList, field_def: GraphQLField) -> Out:
        if name == "project":
            return self.by_id("Project", f"{a}.v2_project_id", fd, field_def)
        raise Unsupported(name)


# Compiled plans (or None: the resolver path) of recent operations and variable values.
PLAN_CACHE_SIZE = 512
_plans: OrderedDict[tuple[int, int, str, bool], tuple[Any, Any, Plan | None]] = OrderedDict()


def compile_plan(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDetails],
    variable_values: Any,
    operation: OperationDefinitionNode,
    root_type: GraphQLObjectType,
    fields: GroupedFieldSet,
    context: Context,
) -> Plan | None:
    """One statement answering ``fields`` of a query, or None for the resolver path.

    The plan depends only on the schema, the operation (strawberry's parser cache hands the
    same document to every request with the same text) and the variables' values, so it is
    remembered for those; the entry keeps both objects, so their ids cannot be reused while
    it lives."""
    coerced = getattr(variable_values, "coerced", variable_values)
    key = (id(schema), id(operation), repr(sorted(coerced.items())), context.is_anonymous)
    cached = _plans.get(key)
    if cached is not None and cached[0] is schema and cached[1] is operation:
        _plans.move_to_end(key)
        return cached[2]
    planner = Planner(schema, fragments, variable_values, operation, context.is_anonymous)
    try:
        sql = planner.root(root_type, fields)
        plan: Plan | None = Plan(sql, planner.params) if len(sql) <= MAX_PLAN_SQL else None
    except Unsupported:
        plan = None
    _plans[key] = (schema, operation, plan)
    if len(_plans) > PLAN_CACHE_SIZE:
        _plans.popitem(last=False)
    return plan
