"""The HTTP/1.1 protocol the gateway is served with: uvicorn's httptools protocol with each
request's head bounded (DESIGN §11).

llhttp puts no bound on a request head, and httptools gathers a header's pieces in memory until
the header ends: a 64 MB header was read whole (the worker went from 97 to 222 MB), 10,000
header lines were accepted, and a client sending its head a byte at a time held its connection
for ever. Here, for every request on a connection:

- more than ``Limits.max_headers`` header lines, or more than ``Limits.max_header_bytes`` bytes
  of names and values (counted as they arrive, a header in progress included) → 431;
- a request target longer than ``MAX_TARGET_BYTES`` → 414, as it arrives (httptools cannot
  parse a longer one: uvicorn answered 400, once it had read it whole);
- a head not complete ``Limits.header_timeout_s`` after its first byte (after the connection
  opened, for the first request) → 408, or a plain close when no byte came.

A refused connection is answered, half-closed and drained for ``LINGER_S`` before it is closed,
so that the client reads the status instead of a reset.

``mwplu-gateway serve`` uses it; under uvicorn's own command it is
``--http gateway.http.protocol:HeadBoundedProtocol`` (its limits then come from the
environment, as the app's settings do).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, ClassVar

import httptools
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.settings import Limits, Settings

log = logging.getLogger("gateway.http")

PROTOCOL = "gateway.http.protocol:HeadBoundedProtocol"
# ASGI scope extension naming the head limits in force (gateway.http.asgi checks it).
EXTENSION = "mwplu.head_limits"
LINGER_S = 2.0
# httptools.parse_url's offsets are 16-bit.
MAX_TARGET_BYTES = 65535
# Request-line and line-ending bytes a head may carry besides its target, names and values.
FRAMING_BYTES = 64
FIELD_FRAMING_BYTES = 4  # ": " and CRLF


class HeadRefused(Exception):
    """Raised from a parser callback to stop llhttp once the head has been answered."""


@functools.cache
def environment_limits() -> Limits:
    return Settings.from_env().limits


class HeadBoundedProtocol(HttpToolsProtocol):
    # None: the limits of the environment (the protocol named on uvicorn's command line).
    limits: ClassVar[Limits | None] = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = self.limits or environment_limits()
        self.max_headers = limits.max_headers
        self.max_header_bytes = limits.max_header_bytes
        # What the bytes of a head may add up to besides its target.
        self.max_raw_bytes = (
            limits.max_header_bytes + FIELD_FRAMING_BYTES * limits.max_headers + FRAMING_BYTES
        )
        self.header_timeout_s = limits.header_timeout_s
        self.extension: dict[object, object] = {
            "max_header_bytes": limits.max_header_bytes,
            "max_headers": limits.max_headers,
            "header_timeout_s": limits.header_timeout_s,
        }
        self.head_timer: asyncio.TimerHandle | None = None
        self.refused = False
        self.message_completed = False  # in the chunk being parsed
        self.reset_head(begun=False)

    def reset_head(self, *, begun: bool) -> None:
        self.in_head = True
        self.head_begun = begun
        self.raw_bytes = 0  # bytes received while the head is incomplete
        self.target_bytes = 0
        self.field_bytes = 0
        self.fields = 0

    # --- connection ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # answered: drained until closed
        self.message_completed = False
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if not self.refused:  # llhttp's own refusal, answered as uvicorn does
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        # A chunk in which an earlier message ended is not counted: where this head started in
        # it is unknown, and the callbacks count its target and complete header lines anyway.
        if self.in_head and self.head_begun and not self.message_completed:
            self.raw_bytes += len(data)
            if self.raw_bytes - self.target_bytes > self.max_raw_bytes:
                self.refuse(431, f"Request header fields over {self.max_header_bytes} bytes.")
                return
        if self.in_head and not self.message_completed:
            # Bytes that begin no message (blank lines between requests) keep no connection.
            self.arm_head_timer()

    # --- parser callbacks (llhttp stops at the first one that raises) --------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.reset_head(begun=True)
        self.scope.setdefault("extensions", {})[EXTENSION] = self.extension
        self.arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self.target_bytes += len(url)
        if self.target_bytes > MAX_TARGET_BYTES:
            self.refuse(414, f"Request target over {MAX_TARGET_BYTES} bytes.")
            raise HeadRefused
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields += 1
        self.field_bytes += len(name) + len(value)
        if self.fields > self.max_headers:
            self.refuse(431, f"More than {self.max_headers} request header fields.")
            raise HeadRefused
        if self.field_bytes > self.max_header_bytes:
            self.refuse(431, f"Request header fields over {self.max_header_bytes} bytes.")
            raise HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if any(name == b"transfer-encoding" for name, _ in self.headers):
            # A chunked body may end with trailer fields, which the parser gathers in memory
            # past every bound above (and past the head's clock): refused, as HTTP allows.
            self.refuse(411, "A request body needs a Content-Length (no chunked bodies).")
            raise HeadRefused
        self.in_head = False
        self.disarm_head_timer()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:  # this request's cycle
            cycle.transport = WritesTogether(self.transport, self.loop)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self.message_completed = True
        self.in_head, self.head_begun = True, False  # waiting for the next request's head
        super().on_message_complete()

    # --- what the protocol writes or closes itself, after the response's held bytes ----------

    def flush_response(self) -> None:
        """Send what the current response holds (``WritesTogether``) before the protocol writes
        to the connection or closes it itself: a HEAD response's head, a last streamed part."""
        cycle = self.cycle
        if cycle is not None and isinstance(cycle.transport, WritesTogether):
            cycle.transport.flush()

    def send_400_response(self, msg: str) -> None:
        self.flush_response()
        super().send_400_response(msg)

    def handle_websocket_upgrade(self) -> None:
        self.flush_response()
        super().handle_websocket_upgrade()

    def shutdown(self) -> None:
        self.flush_response()
        super().shutdown()

    def timeout_keep_alive_handler(self) -> None:
        self.flush_response()
        super().timeout_keep_alive_handler()

    # --- the head's clock ----------------------------------------------------------------------

    def arm_head_timer(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(self.header_timeout_s, self.head_timed_out)

    def disarm_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def head_timed_out(self) -> None:
        self.flush_response()
        self.head_timer = None
        if not self.in_head or self.refused or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head waits, reading paused, for the response before it.
            self.arm_head_timer()
            return
        if self.head_begun:
            self.refuse(408, f"Request header not received within {self.header_timeout_s:g} s.")
        else:
            self.transport.close()  # no byte of a request came

    # --- refusing ------------------------------------------------------------------------------

    def refuse(self, status: int, reason: str) -> None:
        self.flush_response()
        self.refused = True
        self.disarm_head_timer()
        client = "{}:{} - ".format(*self.client) if self.client else ""
        self.logger.warning("%s%d %s", client, status, reason)
        if self.cycle is not None and not self.cycle.response_complete:
            # An earlier request's response is being written: no room for another answer;
            # the connection closes once it is sent.
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        body = reason.encode("ascii")
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend([
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ])
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER_S, self.transport.close)


class WritesTogether:
    """A response's transport that sends what it is given in one step of the loop together.

    uvicorn writes a response's head when the app starts it and the body when the app sends
    it, two sends where one does: the app sends both in the same step. A write is held until
    the step ends (``call_soon``); one that follows it in that step goes out with it, in one
    ``writelines`` (a single ``writev`` under uvloop, no copy). A streamed response's later
    parts are held no longer than the step that wrote them. The protocol sends what is held
    before it writes to the connection or closes it itself (``flush_response``)."""

    __slots__ = ("flushing", "held", "loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self.loop = loop
        self.held: bytes | None = None
        self.flushing: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        held = self.held
        if held is None:
            self.held = data
            self.flushing = self.loop.call_soon(self.flush)
            return
        self.held = None
        if self.flushing is not None:
            self.flushing.cancel()
            self.flushing = None
        self.transport.writelines((held, data))

    def flush(self) -> None:
        held, self.held = self.held, None
        if self.flushing is not None:
            self.flushing.cancel()
            self.flushing = None
        if held is not None and not self.transport.is_closing():
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def head_bounded(limits: Limits) -> type[HeadBoundedProtocol]:
    """The protocol class with these limits (uvicorn's ``http=`` in this process)."""
    return type("HeadBoundedProtocol", (HeadBoundedProtocol,), {"limits": limits})


def warn_unless_head_bounded(app: ASGIApp) -> ASGIApp:
    """The app, logging one warning at its first HTTP request when the server that runs it is not
    this protocol (``uvicorn gateway.http.asgi:app`` without ``--http``)."""
    checked = False

    async def checking(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal checked
        if not checked and scope["type"] == "http":
            checked = True
            if EXTENSION not in scope.get("extensions", {}):
                log.warning(
                    "request heads are not bounded (size, count, time): serve with "
                    "mwplu-gateway serve, or uvicorn … --http %s", PROTOCOL
                )
        await app(scope, receive, send)

    return checking
