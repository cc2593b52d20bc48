"""How bulk migration reads a failure: one line for ``error_message``, its SQLSTATE, and
whether the database is gone (stop) or one conversation is bad (record it, go on)."""

from __future__ import annotations

from typing import Any


def describe(exc: BaseException) -> str:
    """One line for ``error_message``: the database's message, SQLSTATE and detail."""
    orig: BaseException = getattr(exc, "orig", None) or exc
    pg: Any = orig.__cause__ if orig.__cause__ is not None else orig
    message = getattr(pg, "message", None) or str(pg)
    message = str(message).strip().splitlines()[0] if str(message).strip() else type(pg).__name__
    sqlstate = getattr(pg, "sqlstate", None)
    detail = getattr(pg, "detail", None)
    parts = [message]
    if sqlstate:
        parts[0] = f"{message} (SQLSTATE {sqlstate})"
    if detail:
        parts.append(str(detail))
    return ": ".join(parts)[:2000]


def sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None)
    value = getattr(cause, "sqlstate", None) or getattr(orig, "sqlstate", None)
    return str(value) if value else None
