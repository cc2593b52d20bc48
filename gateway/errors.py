"""The errors clients may see, each with its ``extensions.code`` (DESIGN §3).

Anything else raised while executing is masked as ``INTERNAL`` with a request id.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.extensions = {"code": self.code, **extensions}


class Unauthenticated(GatewayError):
    code = "UNAUTHENTICATED"


class Forbidden(GatewayError):
    code = "FORBIDDEN"


class NotFound(GatewayError):
    code = "NOT_FOUND"


class BadUserInput(GatewayError):
    code = "BAD_USER_INPUT"


class Conflict(GatewayError):
    code = "CONFLICT"


class ServiceUnavailable(GatewayError):
    """The database cannot take the request now (restarting, out of connections): retry."""

    code = "SERVICE_UNAVAILABLE"
