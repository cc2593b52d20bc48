"""What a GraphQL request carries over HTTP (body, query string, request id) and the
shape of error responses."""

from __future__ import annotations

import logging
import os
import re
from typing import Any, NamedTuple

import orjson
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from gateway.errors import BadUserInput, GatewayError
from gateway.http.media import APPLICATION_JSON, UTF8, MediaType

log = logging.getLogger("gateway.http")

# A client's X-Request-Id is echoed in the response and the logs only when it looks like one.


REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

QUERY_ONLY = {OperationType.QUERY}
ALL_OPERATIONS = {OperationType.QUERY, OperationType.MUTATION}


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class BodyTooLarge(GatewayError):
    code = "BAD_USER_INPUT"


def error_response(
    error: GatewayError,
    status: int,
    headers: dict[str, str] | None = None,
    media: MediaType | None = None,
) -> JSONResponse:
    """A refusal before execution: no ``data`` entry in ``application/graphql-response+json``,
    ``data: null`` in ``application/json`` (also the answer when no acceptable type is known)."""
    media = media or APPLICATION_JSON
    errors = [{"message": str(error), "extensions": error.extensions}]
    payload: dict[str, Any] = {"errors": errors}
    if not media.strict:
        payload = {"data": None, **payload}
    return JSONResponse(payload, status_code=status, headers=headers, media_type=media.content_type)


def request_id_of(request: Request) -> str:
    given = request.headers.get("x-request-id")
    if given is not None and REQUEST_ID.fullmatch(given):
        return given
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it passes ``limit`` bytes (before parsing)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class Params(NamedTuple):
    """A well-formed GraphQL-over-HTTP request's parameters (``null`` is the same as absent)."""

    query: str | None  # None: a persisted query's hash only (``gateway.http.persisted``)
    variables: dict[str, Any] | None
    operation: str | None
    extensions: dict[str, Any] | None


def parse_params(raw: Any) -> Params:
    """The parameters of a request, or ``BadUserInput`` (HTTP 400) when it is not a
    well-formed GraphQL-over-HTTP request: not a JSON object, no ``query`` string,
    ``variables`` or ``extensions`` not a map, ``operationName`` not a string."""
    if isinstance(raw, list):
        raise BadUserInput("batched operations are not supported")
    if not isinstance(raw, dict):
        raise BadUserInput("the body must be a JSON object")
    query = raw.get("query")
    variables = raw.get("variables")
    operation = raw.get("operationName")
    extensions = raw.get("extensions")
    persisted = isinstance(extensions, dict) and "persistedQuery" in extensions
    if query is None and persisted:
        pass  # the document is known by its hash
    elif not isinstance(query, str) or not query.strip():
        raise BadUserInput("the body must carry a 'query' string")
    if variables is not None and not isinstance(variables, dict):
        raise BadUserInput("'variables' must be a JSON object")
    if operation is not None and not isinstance(operation, str):
        raise BadUserInput("'operationName' must be a string")
    if extensions is not None and not isinstance(extensions, dict):
        raise BadUserInput("'extensions' must be a JSON object")
    return Params(query, variables, operation, extensions)


def get_params(request: Request) -> dict[str, Any]:
    """A GET's parameters from its URL: ``variables`` and ``extensions`` are JSON strings; an
    empty ``operationName`` is the same as none (the spec's GET rules)."""
    raw: dict[str, Any] = dict(request.query_params)
    for name in ("variables", "extensions"):
        if name in raw:
            raw[name] = loads_json(raw[name], f"'{name}' is not valid JSON")
    if raw.get("operationName") == "":
        del raw["operationName"]
    return raw


def is_request_error(result: ExecutionResult) -> bool:
    """Whether ``result`` is a refusal before execution (no ``data`` entry is due): the document
    did not parse or validate (strawberry's ``PreExecutionError``), or the variables did not
    coerce. Every error raised while executing a field has a path; a result with no data and
    no path-carrying error ran no field."""
    if isinstance(result, PreExecutionError):
        return True
    return result.data is None and bool(result.errors) and all(
        error.path is None for error in result.errors or ()
    )


def request_error_status(errors: list[dict[str, Any]]) -> int:
    codes = {(error.get("extensions") or {}).get("code") for error in errors}
    if "SERVICE_UNAVAILABLE" in codes:
        return 503
    if "INTERNAL" in codes:
        return 500
    return 400


def post_content_type(request: Request) -> str | None:
    """Why a POST's ``Content-Type`` is refused (HTTP 415), or None: ``application/json``,
    in UTF-8 (no charset, or ``utf-8``)."""
    kind, *params = request.headers.get("content-type", "").split(";")
    if kind.strip().lower() != "application/json":
        # Form, multipart and text/plain POSTs are what a cross-site form can send.
        return "POST bodies must be application/json"
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in UTF8:
            return "POST bodies must be encoded in UTF-8"
    return None


def format_error(error: GraphQLError) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    extensions = dict(formatted.get("extensions") or {})
    # Errors about the document itself (syntax, validation, limits, variables) carry no code.
    extensions.setdefault("code", "BAD_USER_INPUT")
    formatted["extensions"] = extensions
    return formatted


def loads_json(raw: bytes | str, message: str = "the body is not valid JSON") -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadUserInput(message) from None
