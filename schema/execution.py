"""Where graphql-core hands an operation to the read engine.

strawberry parses, validates and applies the limits (all cached per document); then
graphql-core's executor would complete every field by calling its resolver. This execution
context instead gives the operation's root fields to the engine (``schema.engine``): every
query and mutation runs there, compiled once into plans and executed as batched loads. Only
what the engine does not execute — introspection, ``@defer`` — takes graphql-core's own path.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLObjectType, is_non_null_type, located_error
from graphql.execution.collect_fields import GroupedFieldSet
from graphql.pyutils import AwaitableOrValue
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.engine.compile import CompileError, Unsupported, compile_operation
from schema.engine.run import Run


class EngineExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def execute_root_grouped_field_set(
        self,
        root_type: GraphQLObjectType,
        root_value: Any,
        grouped_field_set: GroupedFieldSet,
        serially: bool,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        try:
            plan = compile_operation(
                self.schema,
                self.fragments,
                self.variable_values,
                self.operation,
                root_type,
                grouped_field_set,
            )
        except Unsupported:
            return super().execute_root_grouped_field_set(
                root_type, root_value, grouped_field_set, serially, position_context
            )
        except CompileError as refused:
            # Refused before any SQL: no root field runs.
            self.collected_errors.errors.append(
                located_error(refused.error, list(refused.nodes), refused.path)
            )
            return refused_data(root_type, grouped_field_set)  # type: ignore[return-value]
        run = Run(plan, self.context_value)

        async def execute() -> Any:
            try:
                data = await (run.execute_serially() if serially else run.execute())
            finally:
                run.release()
            self.collected_errors.errors.extend(run.errors)
            return data

        return execute()


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
