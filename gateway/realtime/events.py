"""An event: a message added, or a conversation whose ``last_message_at`` moved.

Announced on ``mwplu_events`` as JSON with ids only: by the v2 triggers (revision
0009_realtime), by the gateway's own v1 writes (in their statement), and found by the v1 poll
or the catch-up read after the LISTEN connection was lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from gateway.store.chat_writes import CHANNEL

__all__ = ["CHANNEL", "Event", "parse", "polled"]

# a message added; a conversation's last_message_at moved; a v1 conversation migrated to v2
MESSAGE, ACTIVITY, MIGRATED = "m", "c", "x"


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # MESSAGE or ACTIVITY
    source: str  # v1 or v2
    id: UUID  # the message, or the conversation
    conversation_id: UUID
    user_id: UUID | None  # the conversation's owner
    at: datetime | None  # the message's creation, or the conversation's new last_message_at
    moved_to: UUID | None = None  # MIGRATED: the v2 copy

    @property
    def key(self) -> tuple[Any, ...]:
        """Equal for the same event however it was found (announced, polled, caught up)."""
        if self.kind == ACTIVITY:
            return (ACTIVITY, self.source, self.id, self.at)
        return (self.kind, self.source, self.id)

    def activity(self) -> Event:
        """The conversation's activity that a message is (its ``last_message_at`` moved)."""
        return Event(ACTIVITY, self.source, self.conversation_id, self.conversation_id,
                     self.user_id, self.at)


def parse(payload: str) -> Event | None:
    """The event a notification announces; None for anything else (never raises)."""
    try:
        raw = orjson.loads(payload)
        kind, source = raw["k"], raw["s"]
        if kind not in (MESSAGE, ACTIVITY, MIGRATED) or source not in ("v1", "v2"):
            return None
        row_id = UUID(raw["id"])
        user = raw.get("u")
        at = raw.get("at")
        return Event(
            kind=kind,
            source=source,
            id=row_id,
            conversation_id=UUID(raw["c"]) if kind == MESSAGE else row_id,
            user_id=UUID(user) if user else None,
            at=datetime.fromisoformat(at) if at else None,
            moved_to=UUID(raw["to"]) if kind == MIGRATED else None,
        )
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None


def polled(source: str, row: Any) -> Event:
    """A message found by ``gateway.store.realtime.messages_since``."""
    message_id, conversation_id, created_at, user_id = row
    return Event(MESSAGE, source, message_id, conversation_id, user_id, created_at)
