"""Compiled plans, remembered per schema, document, operation and variable values."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from graphql import GraphQLObjectType, GraphQLSchema, OperationDefinitionNode
from graphql.execution.collect_fields import FragmentDetails, GroupedFieldSet

from schema.engine.compile import CompileError, Compiler
from schema.engine.plan import OperationPlan

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
    key = (id(schema), id(operation), repr(sorted(coerced.items())))
    cached = _plans.get(key)
    if cached is not None and cached[0] is schema and cached[1] is operation:
        _plans.move_to_end(key)
        result = cached[2]
    else:
        compiler = Compiler(schema, fragments, variable_values, operation)
        try:
            result = compiler.operation_plan(root_type, fields)
        except CompileError as error:
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

