"""Error masking, error logging and the document limits that strawberry does not ship.

Coded errors (``GatewayError``) and errors about the request itself (syntax, validation,
variables: they have no ``path``) reach the client with their message; anything raised while
executing is replaced by ``INTERNAL`` with a request id, its detail logged server-side only.
Logged errors are bounded (``log_errors``); fragment bombs are refused before validation
(``CodedMaskErrors.on_parse``); ``DirectiveLimiter`` caps directives.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

from graphql import (
    ASTValidationRule,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
)
from strawberry.extensions import MaskErrors
from strawberry.extensions.base_extension import SchemaExtension

from gateway.db.failures import unavailable
from gateway.errors import GatewayError, ServiceUnavailable

log = logging.getLogger("gateway.errors")

# graphql-core puts its suggestions at the end of most messages, but not all ("… Did you mean
# 'source'? Found: {…}."); the suggested names are quoted and never contain "?".
SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")
# A rejected document is logged, but never more than this many bytes of it.
MAX_LOGGED_DOCUMENT_BYTES = 2048
MAX_LOGGED_MESSAGE_BYTES = 300
MAX_LOGGED_MESSAGES = 5
UNAVAILABLE_MESSAGE = "The database is unavailable right now; retry shortly."
# The default of ``Limits.max_expanded_fields`` (for schemas run without a gateway context).
DEFAULT_MAX_EXPANDED_FIELDS = 2000


def should_mask(error: GraphQLError) -> bool:
    if isinstance(error.original_error, GatewayError):
        return False
    return error.path is not None or (error.original_error is not None and _is_internal(error))


def _is_internal(error: GraphQLError) -> bool:
    # Variable coercion reports bad input without a path, wrapping what the scalar or input
    # type raised: a GraphQLError (graphql-core's own, strawberry's coercion errors) or a
    # ValueError/TypeError. Those describe the client's input, not the server. Anything else
    # without a path (say a RecursionError in a validation rule) is the server's problem.
    return not isinstance(error.original_error, (GraphQLError, ValueError, TypeError))


def truncate(text: str, limit_bytes: int) -> str:
    """``text`` with runs of whitespace folded (one log line), cut to ``limit_bytes`` of UTF-8
    including the marker that says how long it was."""
    folded = " ".join(text.split())
    raw = folded.encode()
    if len(raw) <= limit_bytes:
        return folded
    marker = f" …[{len(raw)} bytes]"
    keep = limit_bytes - len(marker.encode())
    return raw[:keep].decode(errors="ignore") + marker


def log_errors(errors: Sequence[GraphQLError], execution_context: Any = None) -> None:
    """Replaces strawberry's ``Schema.process_errors``, which logs ``str(error)``: the message
    plus an excerpt of the document around it (a whole line, so unbounded for a one-line
    document), and a traceback for every coded error.

    - internal errors are left to ``CodedMaskErrors`` (it logs them with the request id and
      the traceback, then masks them);
    - coded errors raised by resolvers (``NOT_FOUND``, ``BAD_USER_INPUT``, …) get one line;
    - a rejected document (syntax, validation, limits, variables) gets one line with its
      messages and at most ``MAX_LOGGED_DOCUMENT_BYTES`` of the document.
    """
    context = getattr(execution_context, "context", None)
    request_id = getattr(context, "request_id", None)
    rejected: list[GraphQLError] = []
    for error in errors:
        if isinstance(error.original_error, GatewayError):
            log.info(
                "request %s: %s %s",
                request_id,
                error.original_error.extensions.get("code"),
                truncate(error.message, MAX_LOGGED_MESSAGE_BYTES),
            )
        elif not should_mask(error):
            rejected.append(error)
    if rejected:
        messages = "; ".join(
            truncate(e.message, MAX_LOGGED_MESSAGE_BYTES) for e in rejected[:MAX_LOGGED_MESSAGES]
        )
        more = len(rejected) - MAX_LOGGED_MESSAGES
        if more > 0:
            messages += f"; and {more} more"
        document = getattr(execution_context, "query", None) or ""
        log.info(
            "request %s: rejected document: %s | document: %s",
            request_id,
            messages,
            truncate(document, MAX_LOGGED_DOCUMENT_BYTES),
        )


def expanded_fields(document: DocumentNode, limit: int) -> int:
    """The number of fields of ``document`` once every fragment spread is replaced by its
    fragment, counted without expanding anything (each fragment's size is computed once), and
    stopping as soon as it passes ``limit``. Cycles and unknown fragments count 0: validation
    reports them."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    sizes: dict[str, int] = {}
    visiting: set[str] = set()

    def fragment(name: str) -> int:
        if name in sizes:
            return sizes[name]
        if name in visiting or name not in fragments:
            return 0
        visiting.add(name)
        sizes[name] = selections(fragments[name].selection_set)
        visiting.discard(name)
        return sizes[name]

    def selections(selection_set: SelectionSetNode | None) -> int:
        total = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                total += 1 + selections(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                total += selections(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragment(selection.name.value)
            if total > limit:
                break
        return total

    total = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            total += selections(definition.selection_set)
            if total > limit:
                break
    return total


def expansion_limit(execution_context: Any) -> int:
    limits = getattr(getattr(execution_context.context, "settings", None), "limits", None)
    return int(getattr(limits, "max_expanded_fields", DEFAULT_MAX_EXPANDED_FIELDS))


class CodedMaskErrors(MaskErrors):
    """Masks internal errors (see ``should_mask``) and refuses fragment bombs.

    A fragment spread twice in a fragment spread twice in … is a small document whose
    expansion doubles with every level. Strawberry's depth and alias limiters walk every path
    through the spreads (exponential time: 18 levels, some 200 tokens, already take seconds of
    CPU on the event loop), so the expanded size is checked once parsing is done, before any
    validation rule runs, whatever the order of the extensions.
    """

    def __init__(self) -> None:
        super().__init__(should_mask_error=should_mask, error_message="Internal server error.")

    def on_parse(self) -> Iterator[None]:
        yield
        document = self.execution_context.graphql_document
        if document is None:
            return
        limit = expansion_limit(self.execution_context)
        if expanded_fields(document, limit) > limit:
            # Raised after parsing, outside strawberry's parse-error handling: it becomes the
            # request's only error (path-less, so a coded BAD_USER_INPUT), and no validation
            # rule or resolver runs.
            raise GraphQLError(
                f"document expands to more than {limit} fields through its fragment spreads"
            )

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = getattr(self.execution_context.context, "request_id", None)
        if unavailable(error.original_error):
            # Not a bug: one line per request, no traceback; the HTTP layer answers 503 with
            # Retry-After.
            if not getattr(self, "_unavailable_logged", False):
                self._unavailable_logged = True
                log.warning("request %s: database unavailable: %s", request_id,
                            truncate(repr(error.original_error), MAX_LOGGED_MESSAGE_BYTES))
            masked = super().anonymise_error(error)
            masked.message = UNAVAILABLE_MESSAGE
            masked.extensions = {"code": ServiceUnavailable.code, "requestId": request_id}
            return masked
        log.error(
            "internal error [request %s] at %s",
            request_id,
            error.path,
            exc_info=error.original_error,
        )
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL", "requestId": request_id}
        return masked


# Type names in validation messages ("Cannot query field 'x' on type 'Project'."): with
# introspection off, they would let a client map the schema one error at a time.
TYPE_NAMES = re.compile(r" (?:on|of) type '[^']*'|(?<=')\w+\.(?=\w+')")


class NoSuggestions(SchemaExtension):
    """Drop "Did you mean …?" and the names of types from validation messages (with
    introspection off they reveal the schema; trusted documents close the rest)."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or []:
            if error.path is None:  # about the document, not its data
                error.message = TYPE_NAMES.sub("", SUGGESTION.sub("", error.message))


def directive_rule(max_directives: int) -> type[ASTValidationRule]:
    """A validation rule rejecting documents with more than ``max_directives`` directives."""

    class MaxDirectives(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.count = 0

        def enter_directive(self, node: DirectiveNode, *_args: Any) -> None:
            self.count += 1
            if self.count == max_directives + 1:
                self.report_error(
                    GraphQLError(
                        f"document exceeds maximum directive count of {max_directives}", node
                    )
                )

    return MaxDirectives
