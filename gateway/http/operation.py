"""GraphQL's GetOperation(), to the letter: without an ``operationName``, a document must
hold exactly one operation.

strawberry runs the first named operation of a document that has several when the request
names none (graphql-core refuses only when the first is anonymous); the GraphQL specification
makes that a request error. ``create_app`` adds this check to the schema it serves: the
refusal comes once the document is parsed, before validation, so it is a request error like
the others (``200`` with ``data: null`` in ``application/json``, ``400`` without ``data`` in
``application/graphql-response+json``).
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

MESSAGE = "Must provide operation name if query contains multiple operations."


class OperationNameRequired(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        yield
        context = self.execution_context
        document = context.graphql_document
        # The operationName the request gave (strawberry's operation_name falls back to the
        # first operation's).
        if document is None or getattr(context, "_provided_operation_name", "") is not None:
            return
        operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
        if operations > 1:
            raise GraphQLError(MESSAGE)
