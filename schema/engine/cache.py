"""Compiled plans, remembered per schema, document, operation and variable values.

A mutation's plan does not depend on the values of its root fields' arguments (its input is
checked and used by the mutation when it runs; only its payload's selection is planned), and
each post of a message has its own text; a ``node(id:)`` query's plan depends on the type of
the id, and clients ask for many ids. Both are remembered without those values, which are read
again for every request: a plan compiled per request cost more than the rest of a small query.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections import OrderedDict
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    Node,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
)
from graphql.execution.collect_fields import FragmentDetails, GroupedFieldSet
from graphql.execution.values import get_argument_values

from gateway.errors import GatewayError
from resolvers.ids import from_global_id
from schema.engine.compile import CompileError, Compiler, holds_nul
from schema.engine.plan import MUTATION, NODES, OperationPlan

PLAN_CACHE_SIZE = 512
_plans: OrderedDict[tuple[int, int, str], tuple[Any, Any, OperationPlan | CompileError]]
_plans = OrderedDict()


def compile_operation(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDetails],
    variable_values: Any,
    operation: OperationDefinitionNode,
    root_type: GraphQLObjectType,
    fields: GroupedFieldSet,
) -> OperationPlan:
    """The plan of ``fields`` (raises ``CompileError`` for a refused argument).

    A plan depends only on the schema, the operation (strawberry's parser cache hands the same
    document to every request with the same text) and the variables' values, so it is
    remembered for those; the entry keeps both objects, so their ids cannot be reused while it
    lives. Two kinds of operation are remembered without the arguments of their root fields,
    which are read again for each request: mutations (the plan is their payload's selection)
    and ``node``/``nodes`` queries (the plan depends on the types of the ids, not on which
    ids)."""
    coerced = getattr(variable_values, "coerced", variable_values)
    compiler = Compiler(schema, fragments, variable_values, operation)
    # None: the plan is remembered for every variable's value; else the ids of the request's
    # ``node`` fields (none for a mutation), read again for each request
    per_request: list[list[tuple[str, Any]]] | None = None
    if operation.operation == OperationType.MUTATION:
        per_request = []
    elif operation.operation == OperationType.QUERY:
        per_request = node_ids(compiler, root_type, fields)
    shape = ""
    if per_request is not None:
        shaping = shape_variables(operation, fragments)
        coerced = {name: value for name, value in coerced.items() if name in shaping}
        shape = repr([[type_name for type_name, _ in ids] for ids in per_request])
    key = (id(schema), id(operation), repr(sorted(coerced.items())) + shape)
    cached = _plans.get(key)
    if cached is not None and cached[0] is schema and cached[1] is operation:
        _plans.move_to_end(key)
        result = cached[2]
        if per_request is not None and isinstance(result, OperationPlan):
            return with_arguments(result, compiler, root_type, fields, per_request)
    else:
        try:
            result = compiler.operation_plan(root_type, fields)
        except CompileError as error:
            if per_request is not None:
                raise  # refused for these arguments: another request's may be fine
            # Kept without its traceback: the frames of the request that compiled it.
            result = CompileError(error.error.with_traceback(None), error.nodes, error.path)
        _plans[key] = (schema, operation, result)
        if len(_plans) > PLAN_CACHE_SIZE:
            _plans.popitem(last=False)
    if isinstance(result, CompileError):
        # A new exception each time, around a copy of the refusal: raising the remembered one
        # would chain every request's frames onto its traceback, and so would a caller that
        # raises the refusal itself (a subscription's, ``schema.engine.events.subscribe``).
        raise CompileError(copy.copy(result.error), result.nodes, result.path)
    return result


def node_ids(
    compiler: Compiler, root_type: GraphQLObjectType, fields: GroupedFieldSet
) -> list[list[tuple[str, Any]]] | None:
    """The decoded ids of each ``node``/``nodes`` root field, when the query asks for nothing
    else (``__typename`` aside); None otherwise, or when an id does not decode (the compiler
    then refuses it). The ids are strings as graphql-core coerces them (no input objects to
    convert); one with a NUL is left to the compiler, which refuses it as every argument."""
    decoded: list[list[tuple[str, Any]]] = []
    for details in fields.values():
        name = details[0].node.name.value
        if name == "__typename":
            continue
        if name not in ("node", "nodes"):
            return None
        try:
            args = get_argument_values(
                root_type.fields[name], details[0].node, compiler.variable_values
            )
            given = [args["id"]] if name == "node" else list(args["ids"])
            if holds_nul(given):
                return None
            decoded.append([decode_id(i) for i in given])
        except (GraphQLError, GatewayError):
            return None
    return decoded


# The longest global id (``V1ResearchEntry:<uuid>``) is 70 characters: longer strings are
# decoded (and refused) without being remembered.
DECODED_ID_LENGTH = 96


def decode_id(value: str) -> tuple[str, Any]:
    """``from_global_id``, remembered for ids of a plausible length: clients ask for the same
    ids again and again."""
    return _decoded(value) if len(value) <= DECODED_ID_LENGTH else from_global_id(value)


@functools.lru_cache(maxsize=PLAN_CACHE_SIZE * 8)
def _decoded(value: str) -> tuple[str, Any]:
    return from_global_id(value)


def with_arguments(
    plan: OperationPlan,
    compiler: Compiler,
    root_type: GraphQLObjectType,
    fields: GroupedFieldSet,
    ids: list[list[tuple[str, Any]]],
) -> OperationPlan:
    """``plan`` with this request's arguments of its root fields: a mutation's read from the
    variables, a ``node``'s ids (``ids``, one list per ``node``/``nodes`` field)."""
    roots = []
    given = iter(ids)
    for root, (key, details) in zip(plan.roots, fields.items(), strict=True):
        if root.kind == MUTATION:
            compiler.path = [key]
            field_def = root_type.fields[details[0].node.name.value]
            root = dataclasses.replace(root, args=compiler.arguments(field_def, details))
        elif root.kind == NODES:
            root = dataclasses.replace(root, ids=next(given))
        roots.append(root)
    return OperationPlan(roots, plan.columns, plan.by_id)


_shaping: dict[int, tuple[OperationDefinitionNode, frozenset[str]]] = {}


def shape_variables(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDetails]
) -> frozenset[str]:
    """The variables a plan remembered without its root arguments may depend on: those used
    anywhere but in the arguments of its root fields (directives, the selections, fragments)."""
    known = _shaping.get(id(operation))
    if known is not None and known[0] is operation:
        return known[1]
    found: set[str] = set()
    for directive in operation.directives or ():
        found |= _variables(directive)
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode):
            found |= _variables(selection.directives) | _variables(selection.selection_set)
        else:
            found |= _variables(selection)
    for details in fragments.values():
        found |= _variables(details.definition)
    result = frozenset(found)
    if len(_shaping) > PLAN_CACHE_SIZE:
        _shaping.clear()
    _shaping[id(operation)] = (operation, result)
    return result


def _variables(node: Any) -> set[str]:
    found: set[str] = set()

    def walk(item: Any) -> None:
        if isinstance(item, VariableNode):
            found.add(item.name.value)
        elif isinstance(item, Node):
            for name in item.keys:
                if name != "loc":
                    walk(getattr(item, name, None))
        elif isinstance(item, (list, tuple)):
            for each in item:
                walk(each)

    walk(node)
    return found
