"""Compiled plans, remembered per schema, document, operation and variable values.

A mutation's plan does not depend on the values of its root fields' arguments (its input is
checked and used by the mutation when it runs; only its payload's selection is planned), and
each post of a message has its own text: a mutation's plan is remembered without them, and
its root fields' arguments are read again for every request.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any

from graphql import (
    FieldNode,
    GraphQLObjectType,
    GraphQLSchema,
    Node,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
)
from graphql.execution.collect_fields import FragmentDetails, GroupedFieldSet

from schema.engine.compile import CompileError, Compiler
from schema.engine.plan import MUTATION, OperationPlan

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
    lives."""
    coerced = getattr(variable_values, "coerced", variable_values)
    mutation = operation.operation == OperationType.MUTATION
    if mutation:
        shaping = shape_variables(operation, fragments)
        coerced = {name: value for name, value in coerced.items() if name in shaping}
    key = (id(schema), id(operation), repr(sorted(coerced.items())))
    cached = _plans.get(key)
    if cached is not None and cached[0] is schema and cached[1] is operation:
        _plans.move_to_end(key)
        result = cached[2]
        if mutation and isinstance(result, OperationPlan):
            return with_arguments(result, Compiler(schema, fragments, variable_values, operation),
                                  root_type, fields)
    else:
        compiler = Compiler(schema, fragments, variable_values, operation)
        try:
            result = compiler.operation_plan(root_type, fields)
        except CompileError as error:
            if mutation:
                raise  # refused for these arguments: another request's may be fine
            # Kept without its traceback: the frames of the request that compiled it.
            result = CompileError(error.error.with_traceback(None), error.nodes, error.path)
        _plans[key] = (schema, operation, result)
        if len(_plans) > PLAN_CACHE_SIZE:
            _plans.popitem(last=False)
    if isinstance(result, CompileError):
        # A new exception each time: raising the cached one would chain every request's frames
        # onto its traceback.
        raise CompileError(result.error, result.nodes, result.path)
    return result


def with_arguments(
    plan: OperationPlan, compiler: Compiler, root_type: GraphQLObjectType, fields: GroupedFieldSet
) -> OperationPlan:
    """``plan`` with its mutations' arguments read from this request's variables."""
    roots = []
    for root, (key, details) in zip(plan.roots, fields.items(), strict=True):
        if root.kind == MUTATION:
            compiler.path = [key]
            field_def = root_type.fields[details[0].node.name.value]
            root = dataclasses.replace(root, args=compiler.arguments(field_def, details))
        roots.append(root)
    return OperationPlan(roots, plan.columns)


_shaping: dict[int, tuple[OperationDefinitionNode, frozenset[str]]] = {}


def shape_variables(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDetails]
) -> frozenset[str]:
    """The variables a mutation's plan may depend on: those used anywhere but in the
    arguments of its root fields (directives, the payload's selection, fragments)."""
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
