"""Opaque global ids (``base64url("Type:uuid")``) and cursors."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from uuid import UUID

import orjson

from gateway.errors import BadUserInput
from gateway.store.keyset import Keyset

NODE_TYPES = frozenset(
    {
        "V1Conversation",
        "V2Conversation",
        "V1Message",
        "V2Message",
        "Project",
        "City",
        "Zoning",
        "Zone",
        "Typology",
        "Document",
        "Profile",
        "Migration",
        "ChatEvent",
        "FeatureFlag",
        "V1ResearchEntry",
        "V2ResearchEntry",
    }
)


def to_global_id(type_name: str, database_id: UUID | str) -> str:
    # base64.urlsafe_b64encode, without its two Python-level calls and its translation (a
    # response writes thousands of ids). The text is a type's name (letters and digits), ':'
    # and the uuid's hexadecimal form with dashes: in ASCII, a 6-bit group of 62 or 63 (the
    # two characters the url-safe alphabet replaces) needs a byte '>', '?', '~' or DEL at the
    # end of a 3-byte group, so the standard alphabet's output is already url-safe
    # (tests/test_ids.py). ``!s``: asyncpg's uuid formats through ``format()`` otherwise.
    raw = binascii.b2a_base64(f"{type_name}:{database_id!s}".encode(), newline=False)
    return raw.decode().rstrip("=")


def _b64decode(value: str) -> str:
    try:
        padded = value + "=" * (-len(value) % 4)
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise BadUserInput(f"malformed id {value[:64]!r}") from None


def from_global_id(value: str) -> tuple[str, UUID]:
    """Decode a global id; a malformed one is ``BAD_USER_INPUT``."""
    decoded = _b64decode(value)
    type_name, sep, raw_id = decoded.partition(":")
    if not sep or type_name not in NODE_TYPES:
        raise BadUserInput(f"malformed id {value[:64]!r}")
    try:
        return type_name, UUID(raw_id)
    except ValueError:
        raise BadUserInput(f"malformed id {value[:64]!r}") from None


def expect_id(value: str, *type_names: str, argument: str = "id") -> tuple[str, UUID]:
    """Decode a global id that must name one of ``type_names``."""
    type_name, database_id = from_global_id(value)
    if type_name not in type_names:
        raise BadUserInput(
            f"{argument} must be the id of a {' or '.join(type_names)}, got a {type_name} id"
        )
    return type_name, database_id


def optional_id(value: str | None, type_name: str, argument: str) -> UUID | None:
    """The row id of an optional global id argument of ``type_name`` (None when absent)."""
    return None if value is None else expect_id(value, type_name, argument=argument)[1]


# base64's standard alphabet to the url-safe one (a cursor's JSON may hold any character)
_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def _cursor_part(part: object) -> object:
    """A cursor's part as JSON writes it: text (an instant in ISO 8601), or null."""
    if part is None or type(part) is str:
        return part
    if isinstance(part, datetime):
        # orjson writes a UTC instant exactly as ``isoformat()`` does, in a tenth of its time
        # (microseconds only when not zero); an offset of seconds it would cut to minutes.
        return part if part.tzinfo is UTC else part.isoformat()
    return str(part)


def encode_cursor(kind: str, *parts: object) -> str:
    """The opaque cursor of ``parts`` (an instant, a key, a name …) of a ``kind`` of order:
    base64url of the JSON list ``[kind, *parts as text]``, unpadded."""
    raw = orjson.dumps([kind, *map(_cursor_part, parts)])
    return binascii.b2a_base64(raw, newline=False).translate(_URL_SAFE).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, count: int) -> list[str | None]:
    """Split a cursor of ``kind`` into its ``count`` raw parts (None for NULL)."""
    try:
        parts = orjson.loads(_b64decode(cursor))
    except (BadUserInput, orjson.JSONDecodeError):
        raise BadUserInput("invalid cursor") from None
    if (
        not isinstance(parts, list)
        or len(parts) != count + 1
        or parts[0] != kind
        or not all(p is None or isinstance(p, str) for p in parts[1:])
    ):
        raise BadUserInput("invalid cursor")
    return list(parts[1:])


def cursor_datetime(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BadUserInput("invalid cursor") from None
    if value.tzinfo is None:
        raise BadUserInput("invalid cursor")
    return value


def cursor_uuid(raw: str | None) -> UUID:
    try:
        return UUID(str(raw))
    except ValueError:
        raise BadUserInput("invalid cursor") from None


def time_keyset(kind: str, after: str | None) -> Keyset | None:
    """The ``(instant, id)`` position of an ``after`` cursor of ``kind`` (None: from the start)."""
    if after is None:
        return None
    at, row_id = decode_cursor(kind, after, 2)
    return cursor_datetime(at), cursor_uuid(row_id)
