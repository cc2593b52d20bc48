"""Database URLs: parsed once, pointed at the asyncpg driver.

Managed PostgreSQL providers hand out libpq URLs (``?sslmode=require&connect_timeout=10``);
asyncpg takes other names for those settings. ``connect_args`` maps each libpq parameter the
gateway supports to the driver's, and any other parameter is one clear error instead of a
``TypeError`` from the driver.
"""

from __future__ import annotations

import shlex
import ssl
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# libpq parameters read here; ``host`` may be a Unix-socket directory.
SUPPORTED = (
    "sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name",
    "options", "host", "port",
)


class DatabaseUrlError(ValueError):
    """DATABASE_URL cannot be parsed or names an unsupported driver or parameter."""


def _parse(url: str | URL) -> URL:
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        raise DatabaseUrlError(f"malformed database URL: {_redact(str(url))}") from None
    except ValueError:  # make_url reads the port as a number
        raise DatabaseUrlError("malformed database URL: its port is not a number") from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise DatabaseUrlError(
            f"unsupported database URL scheme {parsed.drivername!r} (expected postgresql://)"
        )
    unknown = sorted(set(parsed.query) - set(SUPPORTED))
    if unknown:
        raise DatabaseUrlError(
            f"unsupported database URL parameter {unknown[0]!r} "
            f"(supported: {', '.join(SUPPORTED)})"
        )
    return parsed


def async_url(url: str | URL) -> URL:
    """The URL for SQLAlchemy's asyncpg dialect: libpq's parameters are left out (they go to
    the driver as ``connect_args``)."""
    parsed = _parse(url)
    return parsed.set(drivername="postgresql+asyncpg", query={})


def _one(value: str | tuple[str, ...]) -> str:
    return value[-1] if isinstance(value, tuple) else value


def connect_args(url: str | URL) -> dict[str, Any]:
    """The asyncpg ``connect()`` arguments for the URL's libpq parameters."""
    parsed = _parse(url)
    query = {name: _one(value) for name, value in parsed.query.items()}
    args: dict[str, Any] = {}
    if "host" in query:  # ?host=/var/run/postgresql: a socket directory, or a host name
        args["host"] = query["host"]
    if "port" in query:
        args["port"] = _number(query["port"], "port")
    if "connect_timeout" in query:
        args["timeout"] = float(_number(query["connect_timeout"], "connect_timeout")) or None
    settings: dict[str, str] = {}
    if "application_name" in query:
        settings["application_name"] = query["application_name"]
    if "options" in query:
        settings.update(_options(query["options"]))
    if settings:
        args["server_settings"] = settings
    mode = query.get("sslmode")
    if mode is not None or "sslrootcert" in query or "sslcert" in query:
        args["ssl"] = _ssl(mode, query)
    return {k: v for k, v in args.items() if v is not None}


def _number(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise DatabaseUrlError(f"database URL parameter {name} must be a number") from None
    if number < 0:
        raise DatabaseUrlError(f"database URL parameter {name} must not be negative")
    return number


def _options(value: str) -> dict[str, str]:
    """libpq's ``options`` (``-c name=value`` and ``--name=value``) as server settings."""
    settings: dict[str, str] = {}
    words = shlex.split(value)
    index = 0
    while index < len(words):
        word = words[index]
        if word == "-c" and index + 1 < len(words):
            word, index = words[index + 1], index + 1
        elif word.startswith("-c"):
            word = word[2:]
        elif word.startswith("--"):
            word = word[2:]
        else:
            raise DatabaseUrlError(f"unsupported options {value!r} (expected -c name=value)")
        name, sep, setting = word.partition("=")
        if not sep or not name:
            raise DatabaseUrlError(f"unsupported options {value!r} (expected -c name=value)")
        settings[name.replace("-", "_")] = setting
        index += 1
    return settings


def _ssl(mode: str | None, query: dict[str, str]) -> Any:
    """asyncpg's ``ssl``: a mode it knows, or a context for verification and client certs."""
    if mode is not None and mode not in SSL_MODES:
        raise DatabaseUrlError(f"sslmode must be one of {', '.join(SSL_MODES)}, got {mode!r}")
    if mode == "disable":
        return False
    root, cert, key = query.get("sslrootcert"), query.get("sslcert"), query.get("sslkey")
    verify = mode in ("verify-ca", "verify-full") or (root is not None and mode == "require")
    if not verify and cert is None:
        return mode or "prefer"
    try:
        context = ssl.create_default_context(cafile=root)
    except OSError as exc:
        raise DatabaseUrlError(f"sslrootcert cannot be read: {exc.strerror}") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = mode == "verify-full"
    if cert is not None:
        try:
            context.load_cert_chain(cert, key)
        except OSError as exc:
            raise DatabaseUrlError(f"sslcert/sslkey cannot be read: {exc.strerror}") from None
    return context


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable>"
