"""Read-your-writes with read replicas: a client's queries within
``GATEWAY_READ_YOUR_WRITES_S`` of its own committed write go to the primary (DESIGN §6).

Every worker of every gateway replica must know of that write, and a record kept in the
process that served it would hold only when the client's next request reaches the same
worker. So the gateway gives the write's time to the client instead: the response of a
mutation carries a short-lived token, signed with a key derived from ``JWT_SECRET`` (which
every worker shares) and bound to the viewer, in the header ``X-Mwplu-Last-Write`` and in an
HttpOnly cookie of the same name (``gateway.http.read_your_writes``). A request that brings it
back, as a cookie or a header, within the window is served by the primary, whichever worker
takes it. Nothing is stored, in a process or in the database, and no statement is added.

The trade-off: a client that neither keeps cookies nor echoes the header reads from a replica
right after its write, and may miss it for as long as the replica lags (at most
``GATEWAY_REPLICA_MAX_LAG_S``); the write's own payload is always read on the primary, in the
write's transaction. The window is measured with the gateways' clocks (the token carries its
expiry), so they must agree to within a small part of it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time
from contextvars import ContextVar
from dataclasses import dataclass

from gateway.db.transactions import Viewer
from gateway.settings import Settings

NAME = "mwplu_last_write"  # the cookie
HEADER = "x-mwplu-last-write"
_MAX_TOKEN = 64


@dataclass
class WriteWindow:
    """One request's read-your-writes state: the token the client brought (unverified), and
    the viewer whose write this request committed (then the response carries a new token)."""

    # the header's and the cookie's (a client may bring both, one of them stale)
    received: tuple[str, ...] = ()
    written_by: Viewer | None = None

    def recent_for(self, viewer: Viewer, settings: Settings, now: float | None = None) -> bool:
        return any(is_recent(token, viewer, settings, now) for token in self.received)


# Set by the HTTP layer for the request it serves: ``Context`` (built by the endpoint) reads it
# when it routes a query and marks it when a write commits. None outside an HTTP request.
current_window: ContextVar[WriteWindow | None] = ContextVar("mwplu_write_window", default=None)


@functools.lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    # Derived, so that the token never serves as, or reveals anything of, a JWT signature.
    return hashlib.sha256(b"mwplu-gateway read-your-writes\x00" + secret.encode()).digest()


def _mac(settings: Settings, viewer: Viewer, until_ms: int) -> str:
    # Bound to the viewer: a client that switches users does not carry the window over.
    message = f"{until_ms}|{viewer.role}|{viewer.claims.get('sub', '')}".encode()
    digest = hmac.new(_key(settings.jwt_secret or ""), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def issue(viewer: Viewer, settings: Settings, now: float | None = None) -> str:
    """A token that sends ``viewer``'s queries to the primary for the window from ``now``."""
    now = time.time() if now is None else now
    until_ms = int((now + settings.replicas.read_your_writes_s) * 1000)
    return f"{until_ms}.{_mac(settings, viewer, until_ms)}"


def is_recent(token: str, viewer: Viewer, settings: Settings, now: float | None = None) -> bool:
    """Whether ``token`` was issued by a gateway sharing this secret, for ``viewer``, and its
    window is still open (and no longer than this gateway's)."""
    if len(token) > _MAX_TOKEN:
        return False
    until, _, mac = token.partition(".")
    if not (until.isascii() and until.isdigit()):
        return False
    until_ms = int(until)
    now_ms = (time.time() if now is None else now) * 1000
    window_ms = settings.replicas.read_your_writes_s * 1000
    if not now_ms < until_ms <= now_ms + window_ms + 1000:
        return False
    # compare_digest refuses non-ASCII text (headers and cookies are read as latin-1)
    return mac.isascii() and hmac.compare_digest(mac, _mac(settings, viewer, until_ms))
