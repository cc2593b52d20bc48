"""An operation compiled into plans (``schema.engine.plan``), once per document, operation and
variable values.

The selection of every field is resolved against the declarations of
``gateway.store.graph``: a scalar becomes a column of its type's rows (rendered by its GraphQL
type), a relation the column holding its key(s) and the plan of its target. Every argument at
any depth is checked here (page sizes, cursors, ids, filters), so a request refused for its
arguments sends no SQL at all.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_named_type,
    is_abstract_type,
)
from graphql.execution.collect_fields import (
    FieldDetailsList,
    FragmentDetails,
    GroupedFieldSet,
    collect_subfields,
)
from graphql.execution.values import get_argument_values
from strawberry.schema.schema_converter import GraphQLCoreConverter

from gateway.db import instants
from gateway.errors import BadUserInput, GatewayError
from gateway.store import select
from gateway.store.graph import DECLARATIONS, Page, Scalar, ToMany, ToOne
from resolvers.ids import time_keyset, to_global_id
from schema.common import page_size
from schema.engine import roots
from schema.engine.arguments import Arguments, arguments_converter
from schema.engine.plan import (
    CURSOR,
    DBID,
    EDGES,
    END,
    HAS_NEXT,
    ID,
    LEAF,
    LITERAL,
    MANY,
    NODE,
    ONE,
    PAGE,
    PAGE_INFO,
    START,
    TOTAL,
    TYPENAME,
    ConnectionPlan,
    Convert,
    FieldPlan,
    ObjectPlan,
    OperationPlan,
    Part,
    RootPlan,
    ValueField,
    ValuePlan,
    mark_keyed,
    read_by_id,
    relations,
)
from schema.engine.writer import root_writers


class CompileError(Exception):
    """An argument refused while compiling (``error``), at the field ``path`` (response keys)."""

    def __init__(self, error: GatewayError, nodes: tuple[FieldNode, ...], path: list[str]):
        super().__init__(str(error))
        self.error = error
        self.nodes = nodes
        self.path = path


# Stored values that JSON cannot hold as they are. Instants and dates are left to orjson,
# which writes them as ``isoformat()`` does, in C (a third of R1's writing in Python); asyncpg's
# uuids are not ``uuid.UUID`` to orjson.
_CONVERTERS: dict[str, Convert] = {
    "Decimal": str,
    "Float": float,
    "UUID": str,
}


def converter(type_: GraphQLOutputType) -> Convert | None:
    """How a stored value of a leaf of ``type_`` is written (None: as it is)."""
    named = get_named_type(type_)
    if isinstance(named, GraphQLEnumType):
        names = {_stored(v.value): name for name, v in named.values.items()}
        return names.get
    return _CONVERTERS.get(named.name)


# Stored leaves of these scalar types are selected in another form, and written by its
# converter (``read_as``).
_READ_AS: dict[str, tuple[Callable[[str], str], Convert]] = {
    "DateTime": (instants.text_form, instants.parse),
}


def read_as(
    scalar: Scalar, type_: GraphQLOutputType, *, selected: bool = True
) -> tuple[str, Convert | None]:
    """The SQL a declared scalar leaf of ``type_`` is selected as, and how it is written; a
    payload's (not ``selected``: a value the mutation returned) is written as it is."""
    if scalar.ids_of:
        return scalar.sql, global_ids(scalar.ids_of)
    found = _READ_AS.get(get_named_type(type_).name) if selected else None
    if found is not None:
        form, parse = found
        return form(scalar.sql), parse
    return scalar.sql, converter(type_)


def global_ids(type_name: str) -> Convert:
    """Writes a stored uuid, or a list of them, as global ids of ``type_name``."""

    def convert(value: Any) -> Any:
        if isinstance(value, list):
            return [to_global_id(type_name, v) for v in value]
        return to_global_id(type_name, value)

    return convert


def holds_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` holds NUL (PostgreSQL's text cannot)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_nul(v) for v in value)
    return False


def _stored(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


# each field's argument converter, with the field it was built for (ids are reused)
_converters: dict[int, tuple[Any, Arguments]] = {}


class Compiler:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        variable_values: Any,
        operation: OperationDefinitionNode,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variable_values = variable_values
        self.operation = operation
        self.columns: dict[str, list[str]] = {}
        self.path: list[str] = []

    # -- plumbing -----------------------------------------------------------------------------

    def column(self, type_name: str, sql: str) -> int:
        """The position of ``sql`` in the rows of ``type_name`` (0 is the id)."""
        columns = self.columns.setdefault(type_name, [])
        if sql not in columns:
            columns.append(sql)
        return columns.index(sql) + 1

    def object_type(self, name: str) -> GraphQLObjectType:
        type_ = self.schema.type_map[name]
        assert isinstance(type_, GraphQLObjectType)
        return type_

    def subfields(self, type_: GraphQLObjectType, details: FieldDetailsList) -> GroupedFieldSet:
        collected = collect_subfields(
            self.schema, self.fragments, self.variable_values, self.operation, type_, details
        )
        if collected.new_defer_usages or any(
            d.defer_usage is not None or d.fragment_variable_values is not None
            for ds in collected.grouped_field_set.values()
            for d in ds
        ):
            # Neither is in the schema, so validation refuses them first.
            refused = BadUserInput("@defer and fragment arguments are not supported")
            raise CompileError(refused, tuple(d.node for d in details), list(self.path))
        return collected.grouped_field_set

    def arguments(self, field_def: GraphQLField, details: FieldDetailsList) -> dict[str, Any]:
        """The field's arguments as strawberry gives them to a resolver (input objects as
        their classes, enums as members), by Python name."""
        raw = get_argument_values(field_def, details[0].node, self.variable_values)
        if holds_nul(raw):
            # PostgreSQL's text cannot hold it: refused here rather than failing in SQL
            refused = BadUserInput("string arguments cannot contain the NUL character (\\u0000)")
            raise CompileError(refused, tuple(d.node for d in details), list(self.path))
        definition = field_def.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
        known = _converters.get(id(definition))
        if known is None or known[0] is not definition:
            strawberry_schema = self.schema._strawberry_schema  # type: ignore[attr-defined]
            known = _converters[id(definition)] = (definition, arguments_converter(
                definition.arguments,
                strawberry_schema.schema_converter.scalar_registry,
                strawberry_schema.config,
            ))
        return known[1](raw)

    def checked(self, check: Callable[[], Any], details: FieldDetailsList) -> Any:
        try:
            return check()
        except GatewayError as error:
            nodes = tuple(d.node for d in details)
            raise CompileError(error, nodes, list(self.path)) from None

    def possible(self, field_def: GraphQLField, names: list[str]) -> list[str]:
        """Of the object types ``names``, those the field's type admits."""
        named = get_named_type(field_def.type)
        if is_abstract_type(named):
            admitted = {t.name for t in self.schema.get_possible_types(named)}
            return [n for n in names if n in admitted]
        return [n for n in names if n == named.name]

    # -- object selections ---------------------------------------------------------------------

    def object_plan(self, type_name: str, details: FieldDetailsList) -> ObjectPlan:
        type_ = self.object_type(type_name)
        entity = DECLARATIONS[type_name]
        # Rows of a table are selected (keys as text, instants in text form); a payload's are
        # the values its mutation returned, looked up by the declared column text as they are
        # (``roots.run_mutation``).
        selected = bool(entity.table)
        plan = ObjectPlan(type_name)
        for key, field_details in self.subfields(type_, details).items():
            name = field_details[0].node.name.value
            self.path.append(key)
            nodes = tuple(d.node for d in field_details)
            if name == "__typename":
                plan.fields.append(FieldPlan(key, name, TYPENAME, True, nodes, type_name,
                                             literal=type_name))
                self.path.pop()
                continue
            field_def = type_.fields[name]
            non_null = isinstance(field_def.type, GraphQLNonNull)
            f = FieldPlan(key, name, LEAF, non_null, nodes, type_name)
            declared = entity.fields.get(name)
            if name == "id":
                f.kind = ID
            elif name == "databaseId":
                f.kind = DBID
            elif name == "source" and entity.source is not None:
                f.kind, f.literal = LITERAL, entity.source.upper()
            elif isinstance(declared, Scalar):
                sql, f.convert = read_as(declared, field_def.type, selected=selected)
                f.column = self.column(type_name, sql)
            elif isinstance(declared, ToOne):
                self.to_one(f, type_name, declared, field_def, field_details, selected=selected)
            elif isinstance(declared, ToMany):
                f.kind = MANY
                f.column = self.column(
                    type_name, select.keys(declared.keys) if selected else declared.keys
                )
                f.targets = {declared.target: self.object_plan(declared.target, field_details)}
            elif isinstance(declared, Page):
                f.kind = PAGE
                f.connection = self.page(declared, field_def, field_details)
            else:
                raise LookupError(f"{type_name}.{name} has no declaration")
            plan.fields.append(f)
            if f.kind in (ONE, MANY, PAGE):
                plan.relations.append(f)
            self.path.pop()
        return plan

    def to_one(
        self,
        f: FieldPlan,
        type_name: str,
        declared: ToOne,
        field_def: GraphQLField,
        details: FieldDetailsList,
        *,
        selected: bool,
    ) -> None:
        f.kind = ONE
        f.column = self.column(type_name, select.key(declared.key) if selected else declared.key)
        if isinstance(declared.target, str):
            names = [declared.target]
        else:
            assert declared.by is not None
            f.by = self.column(type_name, declared.by)
            f.by_store = dict(declared.target)
            names = list(declared.target.values())
        f.targets = {n: self.object_plan(n, details) for n in self.possible(field_def, names)}

    def page(
        self, declared: Page, field_def: GraphQLField, details: FieldDetailsList
    ) -> ConnectionPlan:
        args = self.arguments(field_def, details)
        order = declared.order
        limit = self.checked(lambda: page_size(args.get("first")), details)
        after = self.checked(lambda: time_keyset(order.cursor, args.get("after")), details)
        connection = self.connection(
            field_def,
            details,
            [declared.target],
            limit=limit,
            after=after,
            cursor_kind=order.cursor,
            cursor_sql=f"t.{order.instant}",
        )
        connection.target = declared.target
        return connection

    def connection(
        self,
        field_def: GraphQLField,
        details: FieldDetailsList,
        node_types: list[str],
        *,
        limit: int,
        after: Any,
        cursor_kind: str,
        cursor_sql: str | None,
    ) -> ConnectionPlan:
        """A Relay connection's selection (``totalCount``, ``pageInfo``, ``edges``); its
        nodes are rows of ``node_types``. ``cursor_sql`` is the column of the cursor's first
        part in those rows (None: the root listing provides the cursors)."""
        connection_type = self.object_type(get_named_type(field_def.type).name)
        edge_type = self.object_type(
            get_named_type(connection_type.fields["edges"].type).name
        )
        node_def = edge_type.fields["node"]
        plan = ConnectionPlan(
            parts=[],
            node_plans=[],
            limit=limit,
            after=after,
            cursor_kind=cursor_kind,
            cursor_column=None,
            counted=False,
            node_type=get_named_type(node_def.type).name,
        )
        cursor_needed = False
        for key, fd in self.subfields(connection_type, details).items():
            name = fd[0].node.name.value
            self.path.append(key)
            nodes = tuple(d.node for d in fd)
            if name == "__typename":
                plan.parts.append(Part(key, TYPENAME, connection_type.name, nodes=nodes))
            elif name == "totalCount":
                plan.counted = True
                plan.parts.append(Part(key, TOTAL, nodes=nodes))
            elif name == "pageInfo":
                info_type = self.object_type(
                    get_named_type(connection_type.fields["pageInfo"].type).name
                )
                kinds = {"hasNextPage": HAS_NEXT, "startCursor": START, "endCursor": END}
                parts = []
                for k, sub in self.subfields(info_type, fd).items():
                    sub_name = sub[0].node.name.value
                    if sub_name == "__typename":
                        parts.append(Part(k, TYPENAME, info_type.name))
                    else:
                        parts.append(Part(k, kinds[sub_name]))
                        cursor_needed |= sub_name != "hasNextPage"
                        plan.peeks |= sub_name == "hasNextPage"
                plan.parts.append(Part(key, PAGE_INFO, parts=parts, nodes=nodes))
            elif name == "edges":
                parts = []
                for k, sub in self.subfields(edge_type, fd).items():
                    sub_name = sub[0].node.name.value
                    sub_nodes = tuple(d.node for d in sub)
                    if sub_name == "__typename":
                        parts.append(Part(k, TYPENAME, edge_type.name, nodes=sub_nodes))
                    elif sub_name == "cursor":
                        parts.append(Part(k, CURSOR, nodes=sub_nodes))
                        cursor_needed = True
                    else:
                        self.path.append(k)
                        targets = {
                            n: self.object_plan(n, sub)
                            for n in self.possible(node_def, node_types)
                        }
                        self.path.pop()
                        plan.node_plans.append(targets)
                        parts.append(Part(k, NODE, nodes=sub_nodes, targets=targets))
                plan.parts.append(Part(key, EDGES, parts=parts, nodes=nodes))
            self.path.pop()
        if cursor_needed and cursor_sql is not None:
            for n in node_types:
                plan.cursor_column = self.column(n, cursor_sql)
        return plan

    # -- values computed in Python ---------------------------------------------------------------

    def value_plan(self, type_: GraphQLObjectType, details: FieldDetailsList) -> ValuePlan:
        plan = ValuePlan(type_.name)
        for key, fd in self.subfields(type_, details).items():
            name = fd[0].node.name.value
            nodes = tuple(d.node for d in fd)
            if name == "__typename":
                plan.fields.append(ValueField(key, None, True, nodes, name))
                continue
            field_def = type_.fields[name]
            definition = field_def.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
            out = ValueField(key, definition.python_name, False, nodes, name)
            type_of: Any = field_def.type
            if isinstance(type_of, GraphQLNonNull):
                out.non_null, type_of = True, type_of.of_type
            if isinstance(type_of, GraphQLList):
                out.listed, type_of = True, type_of.of_type
                if isinstance(type_of, GraphQLNonNull):
                    out.item_non_null, type_of = True, type_of.of_type
            if isinstance(type_of, GraphQLObjectType):
                out.sub = self.value_plan(type_of, fd)
            else:
                out.convert = converter(type_of)
            plan.fields.append(out)
        return plan

    # -- the operation ----------------------------------------------------------------------

    def operation_plan(
        self, root_type: GraphQLObjectType, fields: GroupedFieldSet
    ) -> OperationPlan:
        plans = []
        for key, details in fields.items():
            name = details[0].node.name.value
            nodes = tuple(d.node for d in details)
            self.path = [key]
            if name == "__typename":
                root = FieldPlan(key, name, TYPENAME, True, nodes, root_type.name,
                                 literal=root_type.name)
                plans.append(RootPlan(root, roots.ROOT_TYPENAME))
                continue
            field_def = root_type.fields[name]
            non_null = isinstance(field_def.type, GraphQLNonNull)
            root = FieldPlan(key, name, LEAF, non_null, nodes, root_type.name)
            if self.operation.operation == OperationType.MUTATION:
                plan = roots.compile_mutation(self, root, field_def, details)
            elif self.operation.operation == OperationType.SUBSCRIPTION:
                plan = roots.compile_subscription(self, root, field_def, details)
            else:
                plan = roots.compile_root(self, root, field_def, details)
            plan.writers, plan.memos = root_writers(root)
            plans.append(plan)
        below = relations(plans)
        by_id = read_by_id(plans, below)
        mark_keyed(below, by_id)
        return OperationPlan(plans, self.columns, by_id)
