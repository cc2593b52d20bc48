"""Instants (``timestamptz``) written in responses are read in PostgreSQL's text form and
parsed by CPython's C ``datetime.fromisoformat``.

asyncpg's binary decoder builds each value as the epoch plus a ``timedelta``: two objects and
an addition, ~550 ns a value. Selected as text (``text_form``), the driver only decodes a
string and ``parse`` gives the same aware UTC ``datetime`` in ~150 ns; R1 writes ~600
instants a request (550 messages read with their conversations). The parsed values equal
the binary ones, so responses are byte-for-byte unchanged. Instants the gateway compares or
puts in cursors are still selected as they are.

The text form is written in UTC whatever the session's ``TimeZone`` (``AT TIME ZONE 'UTC'``,
then ``Z``), and in ISO form, which depends on the session's ``DateStyle``: ``SESSION_SETTINGS``
fixes it at start-up, after a URL's own options (``gateway.db.engine``), as the server
reports it by default, so that PgBouncer, which compares a client's start-up values with its
server connection's as strings, has no ``SET`` to send before a transaction.
"""

from __future__ import annotations

from datetime import datetime

from asyncpg.pgproto.pgproto import infinity_datetime, negative_infinity_datetime

SESSION_SETTINGS = {"DateStyle": "ISO, MDY"}

_fromisoformat = datetime.fromisoformat
# What asyncpg's binary decoder answers for PostgreSQL's infinite timestamps.
_INFINITE = {"infinityZ": infinity_datetime, "-infinityZ": negative_infinity_datetime}


def text_form(sql: str) -> str:
    """``sql``, a ``timestamptz`` expression, selected in text form for ``parse``."""
    return f"(({sql}) AT TIME ZONE 'UTC')::text || 'Z'"


def parse(text: str) -> datetime:
    """An instant selected with ``text_form``, as the ``datetime`` asyncpg would have given."""
    try:
        return _fromisoformat(text)
    except ValueError:
        found = _INFINITE.get(text)
        if found is None:  # a year before 1 or after 9999: asyncpg refuses it too, alike
            raise OverflowError(f"instant out of range: {text[:40]!r}") from None
        return found  # type: ignore[no-any-return]
