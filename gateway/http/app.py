"""The ASGI app: ``/graphql`` (GraphiQL in development, its assets under ``/graphiql/``),
``/healthz`` and ``/readyz``.

request → media type (``Accept``) → body limit → parameters → auth → context (lazy transaction
as the viewer) → schema → response. Every refusal is a GraphQL-shaped body with a code and the
request id; nothing raised escapes as a bare 500. In production the lifespan refuses a
database role that RLS does not bind.

``/graphql`` follows the GraphQL-over-HTTP specification (``gateway.http.media``): POST with
``application/json`` for every operation, GET (parameters in the URL, ``variables`` and
``extensions`` as JSON) for queries only (a mutation is ``405`` with ``Allow: POST``);
answers in ``application/graphql-response+json`` when the client asks for it (a refusal before
execution is then a 4xx without ``data``), else in ``application/json`` (those refusals are
``200`` with ``data: null``; a request that is not a well-formed GraphQL-over-HTTP request
stays a ``400``).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import orjson
import strawberry
from graphql import GraphQLError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from gateway.auth import viewer_from_header
from gateway.context import Context
from gateway.db import create_engine, migrate
from gateway.db.failures import unavailable
from gateway.errors import BadUserInput, GatewayError, ServiceUnavailable, Unauthenticated
from gateway.http.graphiql import GraphiQLPage
from gateway.http.media import APPLICATION_JSON, UTF8, MediaType, negotiate
from gateway.http.operation import OperationNameRequired
from gateway.settings import Settings
from schema import build_schema
from schema.errors import log_errors

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


class UnsafeDatabaseRole(RuntimeError):
    """In production the gateway's login role must be subject to RLS."""


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
    return uuid.uuid4().hex


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

    query: str
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
    if not isinstance(query, str) or not query.strip():
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
            raw[name] = _loads(raw[name], f"'{name}' is not valid JSON")
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


UNAVAILABLE = ServiceUnavailable.code
RETRY_AFTER_S = 1


def unconfirmed(exc: Exception, context: Context, media: MediaType) -> Response:
    """The answer when the transaction could not be committed: a query's reads may simply be
    retried; a mutation's writes may or may not have been committed (``outcome: unknown``)."""
    transient = unavailable(exc)
    if transient:
        log.warning("request %s: the commit failed, database unavailable: %r",
                    context.request_id, exc)
    else:
        log.error("request %s: the commit failed", context.request_id, exc_info=exc)
    extensions: dict[str, Any] = {
        "code": UNAVAILABLE if transient else "INTERNAL",
        "requestId": context.request_id,
    }
    message = "The database did not confirm the transaction; retry shortly."
    if context.wrote:
        extensions["outcome"] = "unknown"
        message = ("The database did not confirm the write: it may or may not have been "
                   "made. Retry with the same idempotency key, or read before writing again.")
    headers = {"x-request-id": context.request_id}
    if transient:
        headers["retry-after"] = str(RETRY_AFTER_S)
    body: dict[str, Any] = {"errors": [{"message": message, "extensions": extensions}]}
    if not media.strict:
        body = {"data": None, **body}
    return JSONResponse(body, status_code=503 if transient else 500, headers=headers,
                        media_type=media.content_type)


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


class GraphQLEndpoint:
    def __init__(
        self,
        schema: strawberry.Schema,
        settings: Settings,
        graphiql: GraphiQLPage | None = None,
    ) -> None:
        self.schema = schema
        self.settings = settings
        self.graphiql = graphiql

    async def endpoint(self, request: Request) -> Response:
        request_id = request_id_of(request)
        # None: the client accepts no type the gateway serves (406 once the request is known
        # to be well-formed; the refusals before that are in application/json).
        media = negotiate(request.headers.get("accept"))
        try:
            return await self.handle(request, request_id, media)
        except BodyTooLarge as exc:
            log.info("request %s: refused: %s", request_id, exc)
            return error_response(exc, 413, {"x-request-id": request_id}, media)
        except Unauthenticated as exc:
            # The reason only: never the header or the token.
            log.info("request %s: unauthenticated: %s", request_id, exc)
            headers = {
                "www-authenticate": 'Bearer error="invalid_token"',
                "x-request-id": request_id,
            }
            return error_response(exc, 401, headers, media)
        except BadUserInput as exc:
            log.info("request %s: refused: %s", request_id, exc)
            return error_response(exc, 400, {"x-request-id": request_id}, media)
        except Exception:
            # Outside the schema (e.g. the commit failed): same masking as inside it.
            log.exception("internal error [request %s] outside execution", request_id)
            masked = GatewayError("Internal server error.", requestId=request_id)
            return error_response(masked, 500, {"x-request-id": request_id}, media)

    async def handle(self, request: Request, request_id: str, media: MediaType | None) -> Response:
        if request.method == "GET":
            if "query" not in request.query_params and self.graphiql is not None:
                if "text/html" in request.headers.get("accept", ""):
                    return self.graphiql.page()
            limit = self.settings.limits.max_body_bytes
            if len(request.scope.get("query_string", b"")) > limit:
                raise BodyTooLarge(f"query string exceeds {limit} bytes")
            raw: Any = get_params(request)
            allowed = QUERY_ONLY
        else:
            refusal = post_content_type(request)
            if refusal is not None:
                content_type = request.headers.get("content-type", "")
                log.info("request %s: refused: content type %.100r", request_id, content_type)
                return error_response(
                    BadUserInput(refusal), 415, {"x-request-id": request_id}, media
                )
            try:
                body = await read_body(request, self.settings.limits.max_body_bytes)
            except ClientDisconnect:
                log.info("request %s: the client went away while sending its body", request_id)
                return Response(status_code=400)
            raw = _loads(body)
            allowed = ALL_OPERATIONS
        params = parse_params(raw)
        if media is None:
            accept = request.headers.get("accept", "")
            log.info("request %s: refused: not acceptable %.100r", request_id, accept)
            return error_response(
                BadUserInput(
                    "responses are application/graphql-response+json or application/json"
                ),
                406,
                {"x-request-id": request_id},
            )
        viewer = viewer_from_header(request.headers.get("authorization"), self.settings)
        return await self.execute(request, request_id, params, allowed, viewer, media)

    async def execute(
        self,
        request: Request,
        request_id: str,
        params: Params,
        allowed: set[OperationType],
        viewer: Any,
        media: MediaType,
    ) -> Response:
        context = Context(
            settings=self.settings,
            engine=request.app.state.engine,
            viewer=viewer,
            request_id=request_id,
        )
        committed = False
        try:
            result = await self.schema.execute(
                params.query,
                variable_values=params.variables,
                context_value=context,
                operation_name=params.operation,
                allowed_operation_types=allowed,
                operation_extensions=params.extensions,
            )
            committed = True  # from here on, a failure is the COMMIT's (or ROLLBACK's)
            await context.finish(commit=not result.errors)
        except InvalidOperationTypeError as exc:
            if exc.operation_type == OperationType.MUTATION:
                log.info("request %s: refused: a mutation over GET", request_id)
                return error_response(
                    BadUserInput("mutations are only accepted over POST"),
                    405,
                    {"allow": "POST", "x-request-id": request_id},
                    media,
                )
            log.info("request %s: refused: a %s", request_id, exc.operation_type.value)
            return error_response(
                BadUserInput(f"{exc.operation_type.value} operations are not supported"),
                400,
                {"x-request-id": request_id},
                media,
            )
        except CannotGetOperationTypeError:
            # GetOperation() failed: a request error, 200 in application/json (the spec).
            log.info("request %s: refused: unknown or ambiguous operationName", request_id)
            return error_response(
                BadUserInput("unknown or ambiguous operationName"),
                400 if media.strict else 200,
                {"x-request-id": request_id},
                media,
            )
        except Exception as exc:
            if not committed:
                raise
            return unconfirmed(exc, context, media)
        finally:
            if not committed:
                await context.finish(commit=False)
        headers = {"x-request-id": context.request_id}
        errors = [format_error(e) for e in result.errors or ()]
        if any((e.get("extensions") or {}).get("code") == UNAVAILABLE for e in errors):
            # The database could not take the request (restarting, out of connections): a
            # client that retries shortly gets an answer (DESIGN §11).
            headers["retry-after"] = str(RETRY_AFTER_S)
            body: dict[str, Any] = {"errors": errors}
            if not (media.strict and is_request_error(result)):
                body = {"data": result.data, "errors": errors}
            return JSONResponse(body, status_code=503, headers=headers,
                                media_type=media.content_type)
        if media.strict and is_request_error(result):
            # application/graphql-response+json: no data entry, a 4xx (5xx if ours).
            return JSONResponse(
                {"errors": errors},
                status_code=request_error_status(errors),
                headers=headers,
                media_type=media.content_type,
            )
        payload: dict[str, Any] = {"data": result.data}
        if errors:
            payload["errors"] = errors
        return JSONResponse(payload, headers=headers, media_type=media.content_type)


def _loads(raw: bytes | str, message: str = "the body is not valid JSON") -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadUserInput(message) from None


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    engine: AsyncEngine = request.app.state.engine
    head = migrate.head_revision()
    try:
        async with engine.connect() as conn:
            current = (
                await conn.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar()
    except Exception as exc:  # any failure to reach the database means "not ready"
        reason = type(exc).__name__
        if "alembic_version" in str(exc):
            reason = "migrations have not been applied"
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    if current != head:
        return JSONResponse(
            {
                "status": "unavailable",
                "reason": f"database at revision {current}, expected {head}",
            },
            status_code=503,
        )
    return JSONResponse({"status": "ready", "revision": current})


ROLE_CHECK = text(
    """
    SELECT r.rolname, r.rolsuper, r.rolbypassrls,
           ARRAY(
             SELECT c.oid::regclass::text FROM pg_class c
             WHERE c.oid IN (to_regclass('public.chat_conversations'),
                             to_regclass('public.v2_conversations'))
               AND pg_has_role(r.oid, c.relowner, 'MEMBER')
             ORDER BY 1
           ) AS owned
    FROM pg_roles r
    WHERE r.rolname IN (current_user, 'anon', 'authenticated')
    ORDER BY r.rolname = current_user DESC, r.rolname
    """
)


async def check_database_role(engine: AsyncEngine) -> None:
    """Refuse a login role (or viewer role) that RLS does not bind: a superuser, a role with
    BYPASSRLS, or one that owns (or can become the owner of) the chat tables.

    Raises ``UnsafeDatabaseRole`` with a one-line reason.
    """
    async with engine.connect() as conn:
        rows = (await conn.execute(ROLE_CHECK)).mappings().all()
        login = (await conn.execute(text("SELECT current_user"))).scalar()
    for row in rows:
        name = row["rolname"]
        which = "login role" if name == login else "viewer role"
        if row["rolsuper"]:
            reason = "is a superuser"
        elif row["rolbypassrls"]:
            reason = "has BYPASSRLS"
        elif row["owned"]:
            reason = f"owns {', '.join(row['owned'])}"
        else:
            continue
        raise UnsafeDatabaseRole(
            f"the database {which} {name!r} {reason}: row-level security would not apply; "
            "in production serve through a role like 'authenticator' (NOINHERIT, not an owner)"
        )


async def check_serving_database(settings: Settings) -> None:
    """``check_database_role`` on a one-connection engine of ``settings.database_url`` (the
    CLI runs it before starting the server, to fail with one clear line)."""
    engine = create_engine(_serve_url(settings), settings, pool_size=1)
    try:
        await check_database_role(engine)
    finally:
        await engine.dispose()


def create_app(
    settings: Settings,
    engine: AsyncEngine | None = None,
    *,
    schema: strawberry.Schema | None = None,
    graphiql_user: str | None = None,
) -> Starlette:
    """The ASGI app. Without ``engine`` one is created in the lifespan (and disposed).

    With ``settings.graphiql``, ``GET /graphql`` from a browser is GraphiQL, its assets served
    under ``/graphiql/<version>/``; ``graphiql_user`` (the embedded demo's user, development
    only: ignored in production) puts that user's token in the page's headers.

    In production the lifespan refuses to start (``UnsafeDatabaseRole``) when the database
    role would bypass row-level security.
    """
    settings.check_serving()
    schema = schema or build_schema(settings)
    # Log errors our way: bounded, with the request id (see ``log_errors``).
    schema.process_errors = log_errors  # type: ignore[method-assign]
    if OperationNameRequired not in schema.extensions:
        schema.extensions = (*schema.extensions, OperationNameRequired)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = engine is None
        app.state.engine = engine or create_engine(_serve_url(settings), settings)
        try:
            if settings.production:
                await check_database_role(app.state.engine)
            yield
        finally:
            if owned:
                await app.state.engine.dispose()

    graphiql = GraphiQLPage(settings, graphiql_user) if settings.graphiql else None
    graphql = GraphQLEndpoint(schema, settings, graphiql)
    app = Starlette(
        routes=[
            Route("/graphql", graphql.endpoint, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *(graphiql.routes() if graphiql is not None else ()),
        ],
        lifespan=lifespan,
    )
    if engine is not None:
        app.state.engine = engine
    return app


def _serve_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise RuntimeError("create_app needs settings.database_url (the CLI sets it)")
    return settings.database_url
