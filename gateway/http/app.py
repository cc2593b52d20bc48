"""The ASGI app: ``/graphql`` (GraphiQL in development, its assets under ``/graphiql/``),
``/healthz`` and ``/readyz``.

request → body limit → auth → context (lazy transaction as the viewer) → schema → response.
Every refusal is a GraphQL-shaped body with a code and the request id; nothing raised escapes
as a bare 500. In production the lifespan refuses a database role that RLS does not bind.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

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
from strawberry.types.graphql import OperationType

from gateway.auth import viewer_from_header
from gateway.context import Context
from gateway.db import create_engine, migrate
from gateway.errors import BadUserInput, GatewayError, Unauthenticated
from gateway.http.graphiql import GraphiQLPage
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
    error: GatewayError, status: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"data": None, "errors": [{"message": str(error), "extensions": error.extensions}]},
        status_code=status,
        headers=headers,
    )


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


def parse_params(raw: Any) -> tuple[str, dict[str, Any] | None, str | None]:
    if isinstance(raw, list):
        raise BadUserInput("batched operations are not supported")
    if not isinstance(raw, dict):
        raise BadUserInput("the body must be a JSON object")
    query = raw.get("query")
    variables = raw.get("variables")
    operation = raw.get("operationName")
    if not isinstance(query, str) or not query.strip():
        raise BadUserInput("the body must carry a 'query' string")
    if variables is not None and not isinstance(variables, dict):
        raise BadUserInput("'variables' must be a JSON object")
    if operation is not None and not isinstance(operation, str):
        raise BadUserInput("'operationName' must be a string")
    return query, variables, operation


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
        try:
            return await self.handle(request, request_id)
        except BodyTooLarge as exc:
            log.info("request %s: refused: %s", request_id, exc)
            return error_response(exc, 413, {"x-request-id": request_id})
        except Unauthenticated as exc:
            # The reason only: never the header or the token.
            log.info("request %s: unauthenticated: %s", request_id, exc)
            headers = {
                "www-authenticate": 'Bearer error="invalid_token"',
                "x-request-id": request_id,
            }
            return error_response(exc, 401, headers)
        except BadUserInput as exc:
            log.info("request %s: refused: %s", request_id, exc)
            return error_response(exc, 400, {"x-request-id": request_id})
        except Exception:
            # Outside the schema (e.g. the commit failed): same masking as inside it.
            log.exception("internal error [request %s] outside execution", request_id)
            masked = GatewayError("Internal server error.", requestId=request_id)
            return error_response(masked, 500, {"x-request-id": request_id})

    async def handle(self, request: Request, request_id: str) -> Response:
        if request.method == "GET":
            if "query" not in request.query_params and self.graphiql is not None:
                if "text/html" in request.headers.get("accept", ""):
                    return self.graphiql.page()
            limit = self.settings.limits.max_body_bytes
            if len(request.scope.get("query_string", b"")) > limit:
                raise BodyTooLarge(f"query string exceeds {limit} bytes")
            raw: Any = dict(request.query_params)
            if "variables" in raw:
                raw["variables"] = _loads(raw["variables"])
            allowed = QUERY_ONLY
        else:
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            if content_type.lower() != "application/json":
                # Form, multipart and text/plain POSTs are what a cross-site form can send.
                log.info("request %s: refused: content type %.100r", request_id, content_type)
                return error_response(
                    BadUserInput("POST bodies must be application/json"),
                    415,
                    {"x-request-id": request_id},
                )
            try:
                body = await read_body(request, self.settings.limits.max_body_bytes)
            except ClientDisconnect:
                log.info("request %s: the client went away while sending its body", request_id)
                return Response(status_code=400)
            raw = _loads(body)
            allowed = ALL_OPERATIONS
        query, variables, operation = parse_params(raw)
        viewer = viewer_from_header(request.headers.get("authorization"), self.settings)
        return await self.execute(request, request_id, query, variables, operation, allowed, viewer)

    async def execute(
        self,
        request: Request,
        request_id: str,
        query: str,
        variables: dict[str, Any] | None,
        operation: str | None,
        allowed: set[OperationType],
        viewer: Any,
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
                query,
                variable_values=variables,
                context_value=context,
                operation_name=operation,
                allowed_operation_types=allowed,
            )
            await context.finish(commit=not result.errors)
            committed = True
        except InvalidOperationTypeError as exc:
            if exc.operation_type == OperationType.MUTATION:
                log.info("request %s: refused: a mutation over GET", request_id)
                return error_response(
                    BadUserInput("mutations are only accepted over POST"),
                    405,
                    {"allow": "POST", "x-request-id": request_id},
                )
            log.info("request %s: refused: a %s", request_id, exc.operation_type.value)
            return error_response(
                BadUserInput(f"{exc.operation_type.value} operations are not supported"),
                400,
                {"x-request-id": request_id},
            )
        except CannotGetOperationTypeError:
            log.info("request %s: refused: unknown or ambiguous operationName", request_id)
            return error_response(
                BadUserInput("unknown or ambiguous operationName"),
                400,
                {"x-request-id": request_id},
            )
        finally:
            if not committed:
                await context.finish(commit=False)
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [format_error(e) for e in result.errors]
        return JSONResponse(payload, headers={"x-request-id": context.request_id})


def _loads(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadUserInput("the body is not valid JSON") from None


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
