"""What a subscription checks before it starts (DESIGN §10), in a transaction of its own as
the subscriber: the conversation must be one the viewer can read (else ``NOT_FOUND``); the
activity of conversations needs a signed-in viewer, and covers every conversation for admins
and the service role. Each returns the database's time, from which the events count."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from gateway.context import Context, Subscriber
from gateway.errors import NotFound, Unauthenticated
from gateway.store import realtime as store


async def _checked(
    subscriber: Subscriber, source: str | None, conversation: UUID | None
) -> tuple[bool, datetime]:
    context: Context = subscriber.event_context()
    try:
        db = await context.db()
        visible = source is None or conversation is None or (
            await store.visible_conversation(db, source, conversation) is not None
        )
        everyone = context.is_service or (source is None and await context.is_admin())
        now = await store.now(db)
    finally:
        await context.finish(commit=False)
    if not visible:
        raise NotFound("conversation not found")
    return everyone, now


async def start_messages(subscriber: Subscriber, source: str, conversation: UUID) -> datetime:
    """``messageAdded``: the conversation must be visible to the subscriber."""
    if subscriber.viewer.role == "anon":
        raise NotFound("conversation not found")  # no conversation is public
    _, now = await _checked(subscriber, source, conversation)
    return now


async def start_activity(subscriber: Subscriber) -> tuple[UUID | None, datetime]:
    """``conversationActivity``: whose conversations (None: everyone's) and since when."""
    viewer = subscriber.viewer
    if viewer.role == "anon":
        raise Unauthenticated("sign in to follow the activity of your conversations")
    everyone, now = await _checked(subscriber, None, None)
    if everyone or viewer.user_id is None:
        return None, now
    return UUID(viewer.user_id), now
