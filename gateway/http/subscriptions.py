"""Subscriptions on ``/graphql`` (DESIGN §10): the graphql-transport-ws WebSocket protocol
(strawberry's handler) and Server-Sent Events in graphql-sse's distinct-connections mode
(strawberry's SSE encoding and heartbeat, behind the endpoint's own checks).

The token: ``connection_init``'s payload (``{"Authorization": "Bearer …"}``), else the upgrade
request's header; a bad one closes the socket with 4401. Connections per viewer are counted per
worker (``GATEWAY_MAX_CONNECTIONS_PER_VIEWER``; beyond, 4429 or HTTP 429); a subscriber whose
queue overflows is closed with 4429. uvicorn pings idle WebSockets (every 20 s); an SSE stream
carries a comment every 15 s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any, cast

import orjson
import strawberry
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import process_result
from strawberry.http.streaming import SSETransport, merge_stream_with_heartbeat
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.types.execution import ExecutionResult

from gateway.auth import viewer_from_header
from gateway.context import Subscriber
from gateway.db import Viewer
from gateway.errors import BadUserInput, GatewayError, Unauthenticated
from gateway.http.persisted import PersistedDocuments
from gateway.http.requests import Params, error_response
from gateway.settings import Settings

log = logging.getLogger("gateway.http")

CONNECTION_INIT_TIMEOUT = timedelta(seconds=10)
SLOW_GRACE_S = 5.0  # a slow SSE consumer, told, is cut off if it reads nothing for this long


def viewer_key(viewer: Viewer) -> str:
    return f"{viewer.role}:{viewer.user_id or ''}"


def too_many(settings: Settings) -> str:
    limit = settings.realtime.max_connections_per_viewer
    return f"too many connections for this viewer (at most {limit} per worker)"


def subscriber_for(request: Request | WebSocket, viewer: Viewer, request_id: str) -> Subscriber:
    state = request.app.state
    return Subscriber(
        settings=state.settings, engine=state.engine, hub=state.hub, viewer=viewer,
        request_id=request_id,
    )


class TransportWSHandler(BaseGraphQLTransportWSHandler[Subscriber, None]):
    """strawberry's graphql-transport-ws handler, with the gateway's authentication and
    limits at ``connection_init``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slot = ExitStack()
        self._closing: set[asyncio.Task[None]] = set()
        self.context.close = self._close_soon

    def _close_soon(self, code: int, reason: str) -> None:
        task = asyncio.ensure_future(self.websocket.close(code=code, reason=reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        if self.connection_init_received or self.connection_timed_out:
            await super().handle_connection_init(message)  # strawberry's refusal
            return
        subscriber = self.context
        payload = message.get("payload")
        header = None
        if isinstance(payload, dict):
            header = payload.get("Authorization", payload.get("authorization"))
        if header is None:
            header = subscriber.authorization
        try:
            if header is not None and not isinstance(header, str):
                raise Unauthenticated("connection_init's Authorization must be a string")
            subscriber.viewer = viewer_from_header(header, subscriber.settings)
        except Unauthenticated as exc:
            log.info("websocket %s: unauthenticated: %s", subscriber.request_id, exc)
            await self.websocket.close(code=4401, reason=f"Unauthorized: {exc}"[:120])
            return
        limit = subscriber.settings.realtime.max_connections_per_viewer
        admitted = self._slot.enter_context(
            subscriber.hub.connection(viewer_key(subscriber.viewer), limit)
        )
        if not admitted:
            await self.websocket.close(code=4429, reason=too_many(subscriber.settings))
            return
        await super().handle_connection_init(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """The document, through persisted operations (APQ; with GATEWAY_TRUSTED_DOCUMENTS,
        only trusted ones), as over HTTP."""
        if not self.connection_acknowledged or message["id"] in self.operations:
            await super().handle_subscribe(message)  # strawberry's refusal
            return
        payload = message["payload"]
        view = cast(SubscriptionsView, self.view)
        try:
            payload["query"] = view.persisted.resolve(
                payload.get("query"), payload.get("extensions")
            )
        except GatewayError as exc:
            log.info("websocket %s: refused: %s", self.context.request_id, exc)
            await self.send_message({
                "id": message["id"], "type": "error",
                "payload": [{"message": str(exc), "extensions": exc.extensions}],
            })
            return
        await super().handle_subscribe(message)

    async def shutdown(self) -> None:
        try:
            await super().shutdown()
        finally:
            self._slot.close()


class SubscriptionsView(GraphQL[Subscriber, None]):
    """The WebSocket side of ``/graphql``."""

    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(
        self,
        schema: strawberry.Schema,
        persisted: PersistedDocuments,
        allowed_origins: tuple[str, ...] = (),
    ) -> None:
        self.persisted = persisted
        super().__init__(
            schema,
            # pages of other origins (GATEWAY_CORS_ORIGINS); same-origin pages and clients
            # that are not browsers always may
            allowed_origins=allowed_origins,
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=CONNECTION_INIT_TIMEOUT,
            max_subscriptions_per_connection=None,  # the gateway's own limit, with its code
        )

    def encode_json(self, data: object) -> str:
        return _encode(data)  # instants are datetimes until written (orjson writes them)

    async def get_context(self, request: Any, response: Any) -> Subscriber:
        request_id = request.headers.get("x-request-id") or "ws"
        subscriber = subscriber_for(request, Viewer.anonymous(), request_id[:64])
        subscriber.authorization = request.headers.get("authorization")
        return subscriber


def wants_event_stream(request: Request) -> bool:
    return request.method == "POST" and SSETransport().accepts(request.headers.get("accept", ""))


async def event_stream(
    request: Request, request_id: str, params: Params, viewer: Viewer
) -> Response:
    """One subscription over Server-Sent Events (graphql-sse, distinct connections): ``next``
    events, then ``complete``."""
    subscriber = subscriber_for(request, viewer, request_id)
    settings = subscriber.settings
    slot = ExitStack()
    admitted = slot.enter_context(
        subscriber.hub.connection(viewer_key(viewer), settings.realtime.max_connections_per_viewer)
    )
    headers = {"x-request-id": request_id}
    if not admitted:
        slot.close()
        return error_response(BadUserInput(too_many(settings)), 429,
                              {**headers, "retry-after": "5"}, None)
    transport = SSETransport()
    schema: strawberry.Schema = request.app.state.schema
    try:
        # Any operation type: the engine refuses all but a subscription with BAD_USER_INPUT,
        # as over a WebSocket.
        results = await schema.stream(
            params.query, variable_values=params.variables, context_value=subscriber,
            operation_name=params.operation,
        )
    except Exception:
        slot.close()
        raise

    async def frames() -> AsyncGenerator[str, None]:
        try:
            async for result in results:
                if not isinstance(result, ExecutionResult):  # incremental delivery: not served
                    break
                yield transport.encode_next(process_result(result), _encode)
            yield transport.encode_complete()
        finally:
            await results.aclose()

    stream = merge_stream_with_heartbeat(
        frames, lambda: transport.heartbeat_message(_encode),
        interval=transport.heartbeat_interval, send_initial_heartbeat=False,
    )
    return EventStreamResponse(
        stream(), subscriber, slot, headers={**transport.headers, **headers}
    )


class EventStreamResponse(StreamingResponse):
    """The stream of one SSE subscription. Whatever happens — the stream ends, the client
    leaves, the body never starts — the viewer's connection slot is given back. A slow
    consumer is first told (its stream ends with a SERVICE_UNAVAILABLE event once it reads
    again); one that reads nothing for ``SLOW_GRACE_S`` more is cut off."""

    def __init__(
        self, content: Any, subscriber: Subscriber, slot: ExitStack, headers: dict[str, str]
    ) -> None:
        super().__init__(content, headers=headers)
        self.subscriber = subscriber
        self.slot = slot

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = asyncio.ensure_future(super().__call__(scope, receive, send))
        cut: list[asyncio.TimerHandle] = []

        def close(_code: int, _reason: str) -> None:
            if not cut:
                cut.append(asyncio.get_running_loop().call_later(SLOW_GRACE_S, body.cancel))

        self.subscriber.close = close
        try:
            await body
        except asyncio.CancelledError:
            if not (cut and body.cancelled()):
                raise  # the request itself was cancelled
            log.info("request %s: a slow SSE consumer was cut off", self.subscriber.request_id)
        finally:
            body.cancel()
            for handle in cut:
                handle.cancel()
            self.subscriber.close = None
            self.slot.close()


def _encode(value: object) -> str:
    return orjson.dumps(value).decode()  # one line (SSE data cannot hold a newline)

