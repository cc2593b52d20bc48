"""Database URLs: parsed once, pointed at the asyncpg driver."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError


class DatabaseUrlError(ValueError):
    """DATABASE_URL cannot be parsed or names an unsupported driver."""


def async_url(url: str | URL) -> URL:
    """Parse a libpq-style URL and point it at the asyncpg driver."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        raise DatabaseUrlError(f"malformed database URL: {_redact(str(url))}") from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise DatabaseUrlError(
            f"unsupported database URL scheme {parsed.drivername!r} (expected postgresql://)"
        )
    return parsed.set(drivername="postgresql+asyncpg")


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable>"
