"""Prepared operations: a document strawberry has accepted is run again without its pipeline.

strawberry runs every request through its extensions (parse, token and expansion limits,
validation with the gateway's rules, the operation-name check), each built anew per request:
about a fifth of the CPU of a small query, all of it to reach the same verdict for the same
text. The first request with a given document text and ``operationName`` goes through that
pipeline; once strawberry has accepted it (its execution phase began: parsing, every limit and
validation passed), ``Prepared`` remembers the parsed document and the operation's type.
Later requests with the same text, operation name and settings run it without that pipeline:
the variables coerced and the root fields collected by graphql-core's own functions, then
handed to the engine, as graphql-core's executor with the engine's execution context would
(``schema.execution``); an operation that asks for introspection, or defers, runs through that
executor.

What strawberry does around execution is kept: errors are logged by the schema's
``process_errors`` and masked by ``CodedMaskErrors``. A result with no data and only path-less
errors (variables that do not coerce: no field ran, no statement was sent) is answered by the
full pipeline instead, so that request errors read exactly as they do on a first request
(``NoSuggestions`` and the rest). An exception outside any field (a bug) is an ``INTERNAL``
error, masked and logged with its traceback, on either path.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any, cast

import strawberry
from graphql import (
    DocumentNode,
    ExecutionResult,
    FragmentDefinitionNode,
    GraphQLError,
    OperationDefinitionNode,
)
from graphql import OperationType as GraphQLOperationType
from graphql.execution.collect_fields import FragmentDetails, collect_fields
from graphql.execution.execute import execute
from graphql.execution.values import get_variable_values
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from gateway.context import Subscriber
from schema.errors import CodedMaskErrors, should_mask
from schema.execution import (
    EngineExecutionContext,
    engine_data,
    introspection_fields,
    note_operation,
)

PREPARED_SIZE = 512
MAX_COERCION_ERRORS = 50  # graphql-core's ``execute``'s default


@dataclass(frozen=True)
class PreparedOperation:
    document: DocumentNode
    operation_type: OperationType
    settings: Any  # the settings of the request that prepared it (limits depend on them)
    operation: OperationDefinitionNode
    # the document's fragments, as graphql-core's executor reads them (None: one declares
    # variables of its own, which only graphql-core's executor handles)
    fragments: dict[str, FragmentDetails] | None


@dataclass
class _Ran:
    """What ``process_errors`` and ``CodedMaskErrors`` read of strawberry's execution
    context."""

    context: Any
    query: str


class Prepared:
    """The accepted documents of one schema, by (text, operationName), least recently used
    dropped first."""

    def __init__(self, size: int = PREPARED_SIZE) -> None:
        self.size = size
        self._operations: OrderedDict[tuple[str, str | None], PreparedOperation] = OrderedDict()

    def __len__(self) -> int:
        return len(self._operations)

    def get(
        self, query: str, operation_name: str | None, settings: Any
    ) -> PreparedOperation | None:
        key = (query, operation_name)
        prepared = self._operations.get(key)
        if prepared is None or prepared.settings is not settings:
            return None
        self._operations.move_to_end(key)
        return prepared

    def add(
        self, query: str, operation_name: str | None, document: DocumentNode, settings: Any
    ) -> None:
        operation = _operation(document, operation_name)
        if operation is None or operation.operation.value == "subscription":
            return
        fragments: dict[str, FragmentDetails] | None = {
            d.name.value: FragmentDetails(d)
            for d in document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }
        if any(f.definition.variable_definitions for f in (fragments or {}).values()):
            fragments = None
        self._operations[(query, operation_name)] = PreparedOperation(
            document, OperationType(operation.operation.value), settings, operation, fragments
        )
        if len(self._operations) > self.size:
            self._operations.popitem(last=False)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name is not None and o.name.value == name), None)


def prepared_of(schema: strawberry.Schema) -> Prepared:
    prepared = getattr(schema, "prepared", None)
    if prepared is None:
        prepared = Prepared()
        schema.prepared = prepared  # type: ignore[attr-defined]
    return prepared


class RememberAccepted(SchemaExtension):
    """Remembers a document once strawberry has accepted it: the execution phase begins only
    after parsing, the limits and validation have passed."""

    def on_execute(self) -> Iterator[None]:
        ran = self.execution_context
        document, query = ran.graphql_document, ran.query
        context_settings = getattr(ran.context, "settings", None)
        if document is not None and query is not None and context_settings is not None:
            prepared_of(ran.schema).add(
                query, getattr(ran, "_provided_operation_name", None), document, context_settings
            )
        yield


async def execute_operation(
    schema: strawberry.Schema,
    query: str | None,
    *,
    variable_values: dict[str, Any] | None,
    context_value: Any,
    operation_name: str | None,
    allowed_operation_types: set[OperationType],
    operation_extensions: dict[str, Any] | None,
) -> Any:
    """``schema.execute``'s result, through the prepared operation when there is one."""
    prepared = None
    if query is not None:
        prepared = prepared_of(schema).get(
            query, operation_name, getattr(context_value, "settings", None)
        )
    if prepared is not None and prepared.operation_type in allowed_operation_types:
        ran = _Ran(context_value, query or "")
        try:
            result = await _executed(schema, prepared, variable_values, context_value,
                                     operation_name, operation_extensions)
        except Exception as exc:  # a bug outside any field: masked, logged with its traceback
            error = GraphQLError(str(exc), original_error=exc)
            return ExecutionResult(None, _processed(schema, [error], ran))
        errors = result.errors
        if not errors:
            return result
        refused = result.data is None and all(error.path is None for error in errors)
        if not refused or getattr(context_value, "used_database", False):
            result.errors = _processed(schema, errors, ran)
            return result
        # A request error (the variables): the full pipeline answers it. No field ran.
    answered = await schema.execute(
        query,
        variable_values=variable_values,
        context_value=context_value,
        operation_name=operation_name,
        allowed_operation_types=allowed_operation_types,
        operation_extensions=operation_extensions,
    )
    # An exception that escaped strawberry's execution comes back as a path-less error that
    # no extension masked (it skipped their exit): masked here, as on the prepared path.
    if any(_escaped(e) for e in answered.errors or ()):
        masker = _masker(_Ran(context_value, query or ""))
        answered.errors = [
            masker.anonymise_error(e) if _escaped(e) else e for e in answered.errors or ()
        ]
    return answered


async def _executed(
    schema: strawberry.Schema,
    prepared: PreparedOperation,
    variable_values: dict[str, Any] | None,
    context_value: Any,
    operation_name: str | None,
    operation_extensions: dict[str, Any] | None,
) -> ExecutionResult:
    """The operation's result, as graphql-core's ``execute`` with the engine's execution
    context gives it. When the engine answers every root field (no introspection, no
    ``@defer``) it is run here directly: the variables coerced and the root fields collected
    as graphql-core's executor does, without building one (about a tenth of a small
    query's CPU)."""
    direct = _direct(schema, prepared, variable_values, context_value)
    if direct is not None:
        return await direct
    outcome = execute(
        schema._schema,
        prepared.document,
        context_value=context_value,
        variable_values=variable_values,
        operation_name=operation_name,
        executor_class=EngineExecutionContext,
        is_awaitable=cast(Any, optimized_is_awaitable),
        operation_extensions=operation_extensions,
    )
    return await outcome if isawaitable(outcome) else outcome


def _direct(
    schema: strawberry.Schema,
    prepared: PreparedOperation,
    variable_values: dict[str, Any] | None,
    context_value: Any,
) -> Awaitable[ExecutionResult] | None:
    """The engine's run of ``prepared``, or None when graphql-core's executor runs it: the
    variables do not coerce, or a root directive's argument does not (request errors, answered
    as graphql-core answers them), a root field is introspection's, or the operation defers or
    streams."""
    operation, fragments = prepared.operation, prepared.fragments
    if fragments is None or isinstance(context_value, Subscriber):
        return None
    graphql_schema = schema._schema
    values = get_variable_values(
        graphql_schema, operation.variable_definitions or (), variable_values or {},
        max_errors=MAX_COERCION_ERRORS,
    )
    if isinstance(values, list):
        return None
    root_type = graphql_schema.get_root_type(operation.operation)
    if root_type is None:
        return None
    try:
        fields, deferred, _ = collect_fields(
            graphql_schema, fragments, values, root_type, operation
        )
    except (GraphQLError, RecursionError):  # a directive's argument: the executor answers it
        return None
    if deferred or introspection_fields(fields):
        return None
    note_operation(context_value, operation)
    errors: list[GraphQLError] = []
    try:
        data = engine_data(
            graphql_schema, fragments, values, operation, root_type, fields,
            operation.operation == GraphQLOperationType.MUTATION, context_value, errors,
        )
    except GraphQLError as error:  # as graphql-core's executor: no data, that error
        errors.append(error)
        data = None
    return _answered(data, errors)


async def _answered(data: Any, errors: list[GraphQLError]) -> ExecutionResult:
    """The result of the engine's ``data``, as graphql-core's executor builds it: an error
    that escaped every field nulls the whole data."""
    if isawaitable(data):
        try:
            data = await data
        except GraphQLError as error:
            errors.append(error)
            data = None
    return ExecutionResult(data, errors or None)


def _escaped(error: GraphQLError) -> bool:
    """An internal error no extension masked: path-less, raised by the server's code (a
    masked error has no original error; a rejected document's is the client's)."""
    return error.path is None and error.original_error is not None and should_mask(error)


def _masker(ran: _Ran) -> CodedMaskErrors:
    masker = CodedMaskErrors()
    masker.execution_context = ran  # type: ignore[assignment]
    return masker


def _processed(
    schema: strawberry.Schema, errors: list[GraphQLError], ran: _Ran
) -> list[GraphQLError]:
    """``errors`` logged and masked as strawberry's pipeline does (``process_errors``, then
    ``CodedMaskErrors``)."""
    schema.process_errors(errors, ran)  # type: ignore[arg-type]
    masker = _masker(ran)
    return [masker.anonymise_error(e) if masker.should_mask_error(e) else e for e in errors]
