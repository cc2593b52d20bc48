"""The ASGI app: ``/graphql`` (GraphiQL in development, its assets under ``/graphiql/``;
subscriptions over WebSocket and Server-Sent Events), ``/healthz`` and ``/readyz``.

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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from gateway import tracing
from gateway.db import create_engine, replicas
from gateway.http.endpoint import GraphQLEndpoint
from gateway.http.graphiql import GraphiQLPage
from gateway.http.health import (
    check_database_role,
    healthz,
    readyz,
    serve_url,
)
from gateway.http.operation import OperationNameRequired
from gateway.http.outcomes import metrics_endpoint
from gateway.http.persisted import PersistedDocuments, load_manifest
from gateway.http.read_your_writes import ReadYourWrites
from gateway.http.subscriptions import SubscriptionsView
from gateway.metrics import Metrics
from gateway.realtime import Hub
from gateway.settings import Settings
from schema import build_schema
from schema.errors import log_errors

log = logging.getLogger("gateway.http")


class GatewayApp(Starlette):
    """Starlette, with ``POST /graphql`` handed straight to the GraphQL endpoint.

    Nearly every request is that one: Starlette's error and exception middleware and its
    router cost ~5 % of a small query's CPU, for a route that answers every error itself
    (``GraphQLEndpoint.answer``). Only while the app has no middleware, exception handler or
    body limit of its own (CORS and read-your-writes wrap every route) and is not mounted
    under a path; everything else goes through Starlette as usual."""

    graphql: Callable[[Request], Awaitable[Response]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.graphql is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == "/graphql"
            and not scope.get("root_path")
            and not (self.user_middleware or self.exception_handlers or self.max_body_size)
        ):
            scope["app"] = self
            response = await self.graphql(Request(scope, receive, send))
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    engine: AsyncEngine | None = None,
    *,
    schema: strawberry.Schema | None = None,
    graphiql_user: str | None = None,
) -> GatewayApp:
    """The ASGI app. Without ``engine`` one is created in the lifespan (and disposed).

    With ``settings.graphiql``, ``GET /graphql`` from a browser is GraphiQL, its assets served
    under ``/graphiql/<version>/``; ``graphiql_user`` (the embedded demo's user, development
    only: ignored in production) puts that user's token in the page's headers.

    In production the lifespan refuses to start (``UnsafeDatabaseRole``) when the database
    role would bypass row-level security.
    """
    settings.check_serving()
    tracing.configure(settings.otlp_endpoint)
    schema = schema or build_schema(settings)
    # Log errors our way: bounded, with the request id (see ``log_errors``).
    schema.process_errors = log_errors  # type: ignore[method-assign]
    if OperationNameRequired not in schema.extensions:
        schema.extensions = (*schema.extensions, OperationNameRequired)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = engine is None
        app.state.engine = engine or create_engine(serve_url(settings), settings)
        try:
            if settings.production:
                await check_database_role(app.state.engine)
            # Read replicas (DESIGN §6): checked before the first request, then in the background.
            async with replicas.attached(app.state.engine, settings):
                yield
        finally:
            if app.state.hub.sources is not None:
                await app.state.hub.sources.stop()
            if owned:
                await app.state.engine.dispose()

    graphiql = GraphiQLPage(settings, graphiql_user) if settings.graphiql else None
    manifest = (
        load_manifest(settings.trusted_documents) if settings.trusted_documents else None
    )
    persisted = PersistedDocuments(manifest)
    graphql = GraphQLEndpoint(schema, settings, graphiql, persisted)
    app = GatewayApp(
        routes=[
            Route("/graphql", graphql.endpoint, methods=["GET", "POST"]),
            WebSocketRoute(
                "/graphql", SubscriptionsView(schema, persisted, settings.cors_origins)
            ),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *(graphiql.routes() if graphiql is not None else ()),
            *([Route("/metrics", metrics_endpoint, methods=["GET"])] if settings.metrics else []),
        ],
        lifespan=lifespan,
    )
    app.graphql = graphql.endpoint
    if engine is not None:
        app.state.engine = engine
    app.state.settings = settings
    app.state.schema = schema

    app.state.hub = Hub()  # this worker's subscriptions (DESIGN §10)
    app.state.metrics = Metrics(lambda: getattr(app.state, "engine", None), app.state.hub)
    if settings.replicas.urls:
        app.add_middleware(ReadYourWrites, settings=settings)
    if settings.cors_origins:
        # Tokens travel in headers, never cookies: no credentials mode.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id",
                           "x-mwplu-last-write"],
            expose_headers=["x-request-id", "retry-after", "x-mwplu-last-write"],
            max_age=600,
        )
    return app
