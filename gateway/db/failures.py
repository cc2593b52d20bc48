"""Which failures mean the database is unavailable (restarting, out of connection slots, a
connection cut) rather than that a statement was wrong: the caller may retry those later."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# SQLSTATEs of a server that cannot take the work now: too many connections, out of memory
# or disk, shutting down, starting up; and a statement a replica cancelled because replay
# needed what it read ("conflict with recovery", 40001: nothing was done, a retry works).
UNAVAILABLE_SQLSTATES = frozenset(
    {"53300", "53200", "53100", "57P01", "57P02", "57P03", "40001"}
)
_DRIVER = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    # the client's side of the protocol is broken (e.g. a connection cut mid-reply)
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


def unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it wraps) says the database is unavailable."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, (OSError, ConnectionError, PoolTimeoutError, *_DRIVER)):
            return True
        if getattr(exc, "sqlstate", None) in UNAVAILABLE_SQLSTATES:
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__
        seen += 1
    return False
