"""The ASGI app: ``/graphql`` (GraphiQL in development), ``/healthz`` and ``/readyz``.

request → body limit → auth → context (lazy transaction as the viewer) → schema → response.
"""

from __future__ import annotations

import logging
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
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from strawberry.http.ides import get_graphql_ide_html
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from gateway import migrate
from gateway.auth import viewer_from_header
from gateway.context import Context
from gateway.db import create_engine
from gateway.errors import BadUserInput, GatewayError, Unauthenticated
from gateway.settings import Settings
from schema import build_schema

log = logging.getLogger("gateway.http")

QUERY_ONLY = {OperationType.QUERY}
ALL_OPERATIONS = {OperationType.QUERY, OperationType.MUTATION}


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class BodyTooLarge(GatewayError):
    code = "BAD_USER_INPUT"


def error_response(error: GatewayError, status: int) -> JSONResponse:
    return JSONResponse(
        {"data": None, "errors": [{"message": str(error), "extensions": error.extensions}]},
        status_code=status,
    )


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
    def __init__(self, schema: strawberry.Schema, settings: Settings) -> None:
        self.schema = schema
        self.settings = settings

    async def endpoint(self, request: Request) -> Response:
        try:
            return await self.handle(request)
        except BodyTooLarge as exc:
            return error_response(exc, 413)
        except Unauthenticated as exc:
            return error_response(exc, 401)
        except BadUserInput as exc:
            return error_response(exc, 400)

    async def handle(self, request: Request) -> Response:
        if request.method == "GET":
            if "query" not in request.query_params and self.settings.graphiql:
                if "text/html" in request.headers.get("accept", ""):
                    return HTMLResponse(get_graphql_ide_html())
            raw: Any = dict(request.query_params)
            if "variables" in raw:
                raw["variables"] = _loads(raw["variables"])
            allowed = QUERY_ONLY
        else:
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            if content_type != "application/json":
                return error_response(
                    BadUserInput("POST bodies must be application/json"), 415
                )
            try:
                body = await read_body(request, self.settings.limits.max_body_bytes)
            except ClientDisconnect:
                return Response(status_code=400)
            raw = _loads(body)
            allowed = ALL_OPERATIONS
        query, variables, operation = parse_params(raw)
        viewer = viewer_from_header(request.headers.get("authorization"), self.settings)
        return await self.execute(request, query, variables, operation, allowed, viewer)

    async def execute(
        self,
        request: Request,
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
            request_id=request.headers.get("x-request-id") or uuid.uuid4().hex,
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
        except InvalidOperationTypeError:
            return error_response(BadUserInput("mutations are only accepted over POST"), 405)
        except CannotGetOperationTypeError:
            return error_response(BadUserInput("unknown or ambiguous operationName"), 400)
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


def create_app(settings: Settings, engine: AsyncEngine | None = None) -> Starlette:
    """The ASGI app. Without ``engine`` one is created in the lifespan (and disposed)."""
    settings.check_serving()
    schema = build_schema(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = engine is None
        app.state.engine = engine or create_engine(_serve_url(settings), settings)
        try:
            yield
        finally:
            if owned:
                await app.state.engine.dispose()

    app = Starlette(
        routes=[
            Route("/graphql", GraphQLEndpoint(schema, settings).endpoint, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
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
