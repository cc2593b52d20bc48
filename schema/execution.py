"""Where graphql-core hands an operation to the read engine.

strawberry parses, validates and applies the limits (all cached per document); then
graphql-core's executor would complete every field by calling its resolver. This execution
context instead gives the operation's root fields to the engine (``schema.engine``): every
query and mutation runs there, compiled once into plans and executed as batched loads. Only
introspection (``__schema``, ``__type``: graphql-core's own resolvers) takes graphql-core's
path, next to the engine's fields when a query asks for both. A subscription's events are
read by its source stream (``schema.engine.events``); each one's execution hands that on.
"""

from __future__ import annotations

import weakref
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    is_non_null_type,
    located_error,
)
from graphql.execution.collect_fields import FragmentDetails, GroupedFieldSet
from graphql.execution.values import VariableValues
from graphql.pyutils import AwaitableOrValue
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.context import Subscriber
from gateway.errors import BadUserInput
from schema.engine.cache import compile_operation
from schema.engine.compile import CompileError
from schema.engine.events import EventSource, Rendered
from schema.engine.run import Run

INTROSPECTION = frozenset({"__schema", "__type"})


def helpers_of(executor: Any) -> GraphQLResolveInfoHelpers:
    """``executor``'s resolver helpers, referring to it weakly (it outlives every resolver)."""
    ref = weakref.ref(executor)

    def gather(values: Any) -> Any:
        return ref().gather_async_work(values)  # type: ignore[union-attr]

    def track(values: Any) -> None:
        ref().track_async_work(values)  # type: ignore[union-attr]

    return GraphQLResolveInfoHelpers(gather=gather, track=track)


class EngineExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # graphql-core's helpers for resolvers are bound methods of the executor, which holds
        # them: a reference cycle per request, holding the request's context until the cycle
        # collector found it (``tests/test_garbage.py``; R1 in-process 5.4-5.8 -> 4.8-5.3 ms).
        self.async_helpers = helpers_of(self)

    def execute_root_grouped_field_set(
        self,
        root_type: GraphQLObjectType,
        root_value: Any,
        grouped_field_set: GroupedFieldSet,
        serially: bool,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        context = self.context_value
        note_operation(context, self.operation)
        if isinstance(context, Subscriber) and (
            self.operation.operation != OperationType.SUBSCRIPTION
        ):
            error = BadUserInput(
                "queries and mutations are served over HTTP (POST /graphql), subscriptions "
                "over WebSocket or Server-Sent Events"
            )
            self.collected_errors.errors.append(
                located_error(error, [d[0].node for d in grouped_field_set.values()])
            )
            return refused_data(root_type, grouped_field_set)  # type: ignore[return-value]
        if self.operation.operation == OperationType.SUBSCRIPTION:
            # One event, already read as the subscriber by the source stream.
            assert isinstance(root_value, Rendered)
            self.collected_errors.errors.extend(root_value.errors)
            return root_value.data  # type: ignore[return-value]
        introspection = introspection_fields(grouped_field_set)
        if not introspection:
            return self.execute_engine(root_type, grouped_field_set, serially)
        fields = {k: d for k, d in grouped_field_set.items() if k not in introspection}
        introspected = self.execute_fields(
            root_type, root_value, None, introspection, position_context
        )
        if not fields:
            return introspected
        engine = self.execute_engine(root_type, fields, serially)

        async def both() -> dict[str, Any] | None:
            known: Any = await introspected if self.is_awaitable(introspected) else introspected
            data: Any = await engine if self.is_awaitable(engine) else engine
            if data is None or known is None:
                return None
            merged = {**known, **data}
            return {key: merged[key] for key in grouped_field_set if key in merged}

        return both()  # type: ignore[return-value]

    def build_resolve_info(
        self,
        field_def: GraphQLField,
        field_nodes: list[Any],
        parent_type: GraphQLObjectType,
        path: Any,
    ) -> GraphQLResolveInfo[Any]:
        info = super().build_resolve_info(field_def, field_nodes, parent_type, path)
        if self.operation.operation == OperationType.SUBSCRIPTION and path.prev is None:
            # The subscription field's resolver compiles the operation's plan through it.
            return info._replace(root_value=EventSource(self))
        return info

    def execute_engine(
        self, root_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet, serially: bool
    ) -> AwaitableOrValue[dict[str, Any]]:
        return engine_data(  # type: ignore[return-value]
            self.schema, self.fragments, self.variable_values, self.operation, root_type,
            grouped_field_set, serially, self.context_value, self.collected_errors.errors,
        )


def engine_data(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDetails],
    variable_values: VariableValues,
    operation: OperationDefinitionNode,
    root_type: GraphQLObjectType,
    fields: GroupedFieldSet,
    serially: bool,
    context: Any,
    errors: list[GraphQLError],
) -> AwaitableOrValue[dict[str, Any] | None]:
    """The data of ``fields`` (an operation's root fields) as the engine answers them: its
    plan compiled (or remembered), then run for ``context``; field errors go to ``errors``.
    Refused when compiled: no root field runs, no SQL is sent."""
    try:
        plan = compile_operation(schema, fragments, variable_values, operation, root_type, fields)
    except CompileError as refused:
        errors.append(located_error(refused.error, list(refused.nodes), refused.path))
        return refused_data(root_type, fields)
    if hasattr(context, "generic_plans"):
        # statements by key (or without parameters) only: PostgreSQL may skip planning them
        # again (a custom plan of a by-id read under row-level security cost it 4 to 6 times
        # the execution)
        context.generic_plans = plan.generic_plans
    run = Run(plan, context)

    async def execute() -> dict[str, Any] | None:
        try:
            data = await (run.execute_serially() if serially else run.execute())
        finally:
            run.release()
        errors.extend(run.errors)
        return data

    return execute()


def introspection_fields(fields: GroupedFieldSet) -> GroupedFieldSet:
    """The root fields graphql-core's own resolvers answer (``__schema``, ``__type``)."""
    return {
        key: details
        for key, details in fields.items()
        if details[0].node.name.value in INTROSPECTION
    }


def note_operation(context: Any, operation: OperationDefinitionNode) -> None:
    """Tell the request's context which operation it runs (its log line and metrics)."""
    if hasattr(context, "operation_type"):
        context.operation_type = operation.operation.value
        context.operation_name = operation.name.value if operation.name else None


def refused_data(root_type: GraphQLObjectType, fields: GroupedFieldSet) -> dict[str, Any] | None:
    """The data of a request refused when compiled: every root field null (none ran), or no
    data at all when one of them cannot be null."""
    data: dict[str, Any] = {}
    for key, details in fields.items():
        field_def = root_type.fields.get(details[0].node.name.value)
        if field_def is not None and is_non_null_type(field_def.type):
            return None
        data[key] = None
    return data
