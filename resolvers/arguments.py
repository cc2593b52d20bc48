"""Checks shared by root-field arguments."""

from __future__ import annotations

from datetime import datetime

from gateway.errors import BadUserInput


def aware(value: datetime | None, name: str) -> datetime | None:
    """A DateTime argument must carry a UTC offset (a naive one is ambiguous)."""
    if value is not None and value.tzinfo is None:
        raise BadUserInput(f"{name} must carry a UTC offset")
    return value
