"""The read-your-writes token over HTTP (``gateway.db.read_your_writes``): taken from the
request's ``X-Mwplu-Last-Write`` header or ``mwplu_last_write`` cookie for the request's
context, and given back, renewed, on the response of a request that wrote.

An ASGI middleware, so that the endpoint and the context need not know of it; installed only
when replicas are configured (without them every read is the primary's already).
"""

from __future__ import annotations

import math

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.db.read_your_writes import HEADER, NAME, WriteWindow, current_window, issue
from gateway.settings import Settings


class ReadYourWrites:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        max_age = math.ceil(settings.replicas.read_your_writes_s)
        # HttpOnly: scripts have no use for it. Lax: sent on the site's own requests.
        self.cookie = f"Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax" + (
            "; Secure" if settings.production else ""
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        window = WriteWindow(tuple(
            t for t in (connection.headers.get(HEADER), connection.cookies.get(NAME)) if t
        ))
        token = current_window.set(window)

        async def send_token(message: Message) -> None:
            if message["type"] == "http.response.start" and window.written_by is not None:
                value = issue(window.written_by, self.settings)
                headers = MutableHeaders(scope=message)
                headers.append(HEADER, value)
                headers.append("set-cookie", f"{NAME}={value}; {self.cookie}")
            await send(message)

        try:
            await self.app(scope, receive, send_token)
        finally:
            current_window.reset(token)
