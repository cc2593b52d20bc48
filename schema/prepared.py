"""Prepared operations: a document strawberry has accepted is run again without its pipeline.

strawberry runs every request through its extensions (parse, token and expansion limits,
validation with the gateway's rules, the operation-name check), each built anew per request:
about a fifth of the CPU of a small query, all of it to reach the same verdict for the same
text. The first request with a given document text and ``operationName`` goes through that
pipeline; once strawberry has accepted it (its execution phase began: parsing, every limit and
validation passed), ``Prepared`` remembers the parsed document and the operation's type.
Later requests with the same text, operation name and settings run it straight through
graphql-core's ``execute`` with the engine's execution context, as strawberry itself would.

What strawberry does around execution is kept: errors are logged by the schema's
``process_errors`` and masked by ``CodedMaskErrors``. A result with no data and only path-less
errors (variables that do not coerce: no field ran, no statement was sent) is answered by the
full pipeline instead, so that request errors read exactly as they do on a first request
(``NoSuggestions`` and the rest). An exception outside any field (a bug) is an ``INTERNAL``
error, masked and logged with its traceback, on either path.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any, cast

import strawberry
from graphql import DocumentNode, ExecutionResult, GraphQLError, OperationDefinitionNode
from graphql.execution.execute import execute
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from schema.errors import CodedMaskErrors, should_mask
from schema.execution import EngineExecutionContext

PREPARED_SIZE = 512


@dataclass(frozen=True)
class PreparedOperation:
    document: DocumentNode
    operation_type: OperationType
    settings: Any  # the settings of the request that prepared it (limits depend on them)


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
        self._operations[(query, operation_name)] = PreparedOperation(
            document, OperationType(operation.operation.value), settings
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
            result = await outcome if isawaitable(outcome) else outcome
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
