"""The subscriptions of one worker and the fan-out of events to them.

Every subscriber has a bounded queue: an event that finds it full marks the subscriber a slow
consumer (its transport closes the connection with 4429) instead of growing memory. An event is
handed out once, however many ways it was found (the announcement of a v1 write and the v1
poll see the same message): the hub remembers the keys of the events it handed out for
``RECENT_S`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from uuid import UUID

from gateway.realtime.events import MESSAGE, MIGRATED, Event

if TYPE_CHECKING:
    from gateway.realtime.sources import Sources

log = logging.getLogger("gateway.realtime")

# Events handed out are remembered this long (longer than any look-back of the v1 poll or the
# catch-up, ``gateway.realtime.sources.LOOKBACK`` plus a poll), at most RECENT_MAX of them.
RECENT_S = 60.0
RECENT_MAX = 100_000


class SlowConsumer(Exception):
    """The subscriber's queue overflowed: it does not read its events fast enough."""


class Subscription:
    """What one subscriber waits for; ``next`` hands its events out in order."""

    def __init__(
        self,
        hub: Hub,
        size: int,
        on_overflow: Callable[[], None],
        *,
        conversation: tuple[str, UUID] | None = None,
        user_id: UUID | None = None,
    ) -> None:
        self.hub = hub
        self.conversation = conversation  # messageAdded: (store, conversation id)
        self.user_id = user_id  # conversationActivity: only this owner's (None: everyone's)
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.overflowed = False
        # True once its checks passed (it waits, queueing events, while they run)
        self.started = False
        self._on_overflow = on_overflow

    def offer(self, event: Event) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self.hub.slow_consumers += 1
            log.info("a subscriber fell %d events behind: disconnected", self.queue.maxsize)
            self._on_overflow()

    async def next(self, wait: float | None = None) -> Event:
        """The next event (``TimeoutError`` after ``wait`` seconds without one)."""
        if self.overflowed:
            raise SlowConsumer
        event = await asyncio.wait_for(self.queue.get(), wait)
        if self.overflowed:
            raise SlowConsumer
        return event


class Hub:
    def __init__(self) -> None:
        self.messages: dict[tuple[str, UUID], set[Subscription]] = {}
        self.activity: set[Subscription] = set()
        self.connections: Counter[str] = Counter()  # per viewer
        self._recent: OrderedDict[tuple[object, ...], float] = OrderedDict()
        self.sources: Sources | None = None  # started with the first subscription
        self.delivered = 0  # events handed to subscribers' queues
        self.slow_consumers = 0  # subscribers disconnected for falling behind

    # -- subscribers -------------------------------------------------------------------------

    def subscribe(
        self,
        size: int,
        on_overflow: Callable[[], None],
        *,
        conversation: tuple[str, UUID] | None = None,
        user_id: UUID | None = None,
    ) -> Subscription:
        """A subscription to a conversation's messages, or (``conversation`` None) to the
        activity of ``user_id``'s conversations (every conversation when None), until
        ``unsubscribe``."""
        subscription = Subscription(
            self, size, on_overflow, conversation=conversation, user_id=user_id
        )
        if conversation is not None:
            self.messages.setdefault(conversation, set()).add(subscription)
        else:
            self.activity.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        conversation = subscription.conversation
        if conversation is None:
            self.activity.discard(subscription)
            return
        waiting = self.messages.get(conversation)
        if waiting is not None:
            waiting.discard(subscription)
            if not waiting:
                del self.messages[conversation]

    def wants_v1(self) -> bool:
        """Whether anyone waits for what v1's own application writes (the poll runs only
        then)."""
        return bool(self.activity) or any(source == "v1" for source, _ in self.messages)

    def subscribed_conversations(self, source: str) -> list[UUID]:
        return [conversation for s, conversation in self.messages if s == source]

    @contextmanager
    def connection(self, viewer: str, limit: int) -> Iterator[bool]:
        """Counts a viewer's open connections; yields False when it has ``limit`` already."""
        if self.connections[viewer] >= limit:
            yield False
            return
        self.connections[viewer] += 1
        try:
            yield True
        finally:
            self.connections[viewer] -= 1
            if self.connections[viewer] <= 0:
                del self.connections[viewer]

    # -- events ------------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Hand ``event`` to whoever waits for it, once. A v1 message is also its
        conversation's activity (v1 has no trigger to say so); v2's is announced apart."""
        key = event.key
        now = time.monotonic()
        recent = self._recent
        while recent and (
            len(recent) > RECENT_MAX or now - next(iter(recent.values())) > RECENT_S
        ):
            recent.popitem(last=False)
        if key in recent:
            return
        if event.kind in (MESSAGE, MIGRATED):
            waiting = tuple(self.messages.get((event.source, event.conversation_id), ()))
        else:
            waiting = tuple(
                s for s in self.activity if s.user_id is None or s.user_id == event.user_id
            )
        for subscription in waiting:
            subscription.offer(event)
        if waiting:  # remembered only when someone had it: the rest cost nothing
            self.delivered += len(waiting)
            recent[key] = now
        if event.kind == MESSAGE and event.source == "v1":
            self.publish(event.activity())
