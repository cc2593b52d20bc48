"""Error masking and the document limits that strawberry does not ship.

Coded errors (``GatewayError``) and errors about the request itself (syntax, validation,
variables: they have no ``path``) reach the client with their message; anything raised while
executing is replaced by ``INTERNAL`` with a request id, its detail logged server-side only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from graphql import ASTValidationRule, DirectiveNode, GraphQLError, ValidationContext
from strawberry.extensions import AddValidationRules, MaskErrors
from strawberry.extensions.base_extension import SchemaExtension

from gateway.errors import GatewayError

log = logging.getLogger("gateway.errors")

SUGGESTION = re.compile(r"\s*Did you mean .*\?$")


def should_mask(error: GraphQLError) -> bool:
    if isinstance(error.original_error, GatewayError):
        return False
    return error.path is not None or (error.original_error is not None and _is_internal(error))


def _is_internal(error: GraphQLError) -> bool:
    # Variable coercion wraps scalar parse errors (ValueError/TypeError) without a path:
    # those describe the client's input, not the server.
    return not isinstance(error.original_error, (ValueError, TypeError))


class CodedMaskErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=should_mask, error_message="Internal server error.")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = getattr(self.execution_context.context, "request_id", None)
        log.error(
            "internal error [request %s] at %s",
            request_id,
            error.path,
            exc_info=error.original_error,
        )
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL", "requestId": request_id}
        return masked


class NoSuggestions(SchemaExtension):
    """Drop "Did you mean …?" from validation messages (they reveal the schema)."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or []:
            error.message = SUGGESTION.sub("", error.message)


def DirectiveLimiter(max_directives: int) -> SchemaExtension:
    """A validation rule rejecting documents with more than ``max_directives`` directives."""

    class MaxDirectives(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.count = 0

        def enter_directive(self, node: DirectiveNode, *_args: Any) -> None:
            self.count += 1
            if self.count == max_directives + 1:
                self.report_error(
                    GraphQLError(f"document exceeds maximum directive count of {max_directives}", node)
                )

    return AddValidationRules([MaxDirectives])
