"""Where a worker's events come from: one LISTEN connection, one v1 poll.

- LISTEN on a connection of its own (not a pooled one: behind PgBouncer in transaction mode it
  must reach PostgreSQL directly, ``DATABASE_LISTEN_URL``). When it is lost (a restart, a
  killed backend) it is opened again with a growing pause, and what v2 got in the meantime for
  the conversations being watched is read once (``catch_up``); the subscriptions never notice.
- v1 gets no trigger: while someone waits for v1 messages or for activity, one poll per worker
  every ``GATEWAY_V1_POLL_S`` reads the messages written since the last one, through v1's index
  on ``last_message_at``, as the service role.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextvars import Context
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import Viewer, create_engine, take_connection, viewer_transaction
from gateway.realtime.events import ACTIVITY, CHANNEL, Event, parse, polled
from gateway.realtime.hub import Hub
from gateway.settings import Settings
from gateway.store import realtime as store

log = logging.getLogger("gateway.realtime")

# A message is visible to the poll only once its transaction commits, which may be later than
# its created_at: each read looks this far back (the hub drops what it already handed out).
LOOKBACK = timedelta(seconds=10)
POLL_LIMIT = 1000
CATCH_UP_PAGES = 50  # at most this many pages of POLL_LIMIT rows after a reconnection
LIVENESS_S = 5.0  # how often the LISTEN connection is checked (and the database's time read)
MAX_PAUSE_S = 5.0


class Sources:
    def __init__(self, hub: Hub, engine: AsyncEngine, settings: Settings) -> None:
        self.hub = hub
        self.engine = engine
        self.settings = settings
        self.listening = asyncio.Event()
        self.reconnections = 0
        self.backend_pid: int | None = None  # the LISTEN connection's server process
        self._held: list[Event] | None = None  # notifications held while catching up
        self._v1_since: datetime | None = None
        self._db_now: datetime | None = None  # the last time the LISTEN connection was alive
        # In contexts of their own: not the first subscriber's request (its trace, its span).
        self._tasks = [
            asyncio.create_task(self._listen(), name="mwplu listen", context=Context()),
            asyncio.create_task(self._poll_v1(), name="mwplu v1 poll", context=Context()),
        ]

    async def ready(self, within: float) -> bool:
        """Whether LISTEN is in place (within ``within`` seconds)."""
        try:
            await asyncio.wait_for(self.listening.wait(), within)
        except TimeoutError:
            return False
        return True

    def v1_from(self, since: datetime) -> None:
        """The v1 poll covers messages from ``since`` on (a new subscription's start)."""
        if self._v1_since is None or since < self._v1_since:
            self._v1_since = since

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- LISTEN ------------------------------------------------------------------------------

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        event = parse(payload)
        if event is None:
            log.warning("ignored a notification on %s: %.200r", CHANNEL, payload)
        elif self._held is not None:
            self._held.append(event)  # after what the catch-up reads (older)
        else:
            self.hub.publish(event)

    async def _listen(self) -> None:
        # A connection of the pool's making (the same URL and driver arguments), taken out of
        # the pool for good; or one to DATABASE_LISTEN_URL.
        listen_url = self.settings.realtime.listen_url
        engine = create_engine(listen_url, self.settings, pool_size=1) if listen_url else None
        pause = 0.1
        try:
            while True:
                try:
                    await self._listen_once(engine or self.engine)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # any failure: connect again
                    log.warning("LISTEN %s: %s; connecting again in %.1fs", CHANNEL,
                                type(exc).__name__, pause)
                else:
                    pause = 0.1
                self.reconnections += 1
                await asyncio.sleep(pause)
                pause = min(pause * 2, MAX_PAUSE_S)
        finally:
            if engine is not None:
                await engine.dispose()

    async def _listen_once(self, engine: AsyncEngine) -> None:
        """LISTEN until the connection is lost. The connection is one a request transaction
        kept, if any (the pool may hold no other), taken out of the pool for good."""
        conn = await take_connection(engine)
        try:
            pooled = await conn.get_raw_connection()
            raw = pooled.driver_connection
            assert raw is not None
            pooled.detach()  # its place in the pool is free again; closing it closes it
            self.backend_pid = raw.get_server_pid()
            closed = asyncio.Event()
            raw.add_termination_listener(lambda _c: closed.set())
            lost = self._db_now
            self._held = [] if lost is not None else None
            await raw.add_listener(CHANNEL, self._notified)
            now = await raw.fetchval("SELECT now()")
            if lost is not None:
                # From the last time it was known alive; a catch-up that fails leaves that
                # time as it is, for the next attempt.
                await self._catch_up(lost - LOOKBACK)
            self._db_now = now
            held, self._held = self._held or [], None
            for event in held:
                self.hub.publish(event)
            self.listening.set()
            while not closed.is_set():
                try:
                    await asyncio.wait_for(closed.wait(), LIVENESS_S)
                except TimeoutError:
                    self._db_now = await raw.fetchval("SELECT now()", timeout=LIVENESS_S)
            log.warning("LISTEN %s: the connection was lost", CHANNEL)
        finally:
            self.listening.clear()
            self._held = None
            with contextlib.suppress(Exception):
                await conn.close()

    async def _catch_up(self, since: datetime) -> None:
        """What v2 got while nobody listened, for the subscriptions there are, oldest first,
        page by page."""
        conversations = self.hub.subscribed_conversations("v2")
        if not conversations and not self.hub.activity:
            return
        read = 0
        async with viewer_transaction(self.engine, Viewer.service(), self.settings) as db:
            after = since
            for _ in range(CATCH_UP_PAGES):
                messages = await store.v2_messages_since(db, conversations, after, POLL_LIMIT)
                for row in messages:
                    self.hub.publish(polled("v2", row))
                read += len(messages)
                if len(messages) < POLL_LIMIT:
                    break
                after = messages[-1][2]
            else:
                log.warning("LISTEN %s: catch-up stopped after %d messages", CHANNEL, read)
            after = since
            for _ in range(CATCH_UP_PAGES if self.hub.activity else 0):
                moved = await store.v2_moved_since(db, after, POLL_LIMIT)
                for conversation, user, at in moved:
                    self.hub.publish(Event(ACTIVITY, "v2", conversation, conversation, user, at))
                if len(moved) < POLL_LIMIT:
                    break
                after = moved[-1][2]
        log.info("LISTEN %s again: %d v2 messages read since %s", CHANNEL, read, since)

    # -- the v1 poll -------------------------------------------------------------------------

    async def _poll_v1(self) -> None:
        while True:
            await asyncio.sleep(self.settings.realtime.v1_poll_s)
            if not self.hub.wants_v1():
                self._v1_since = None
                continue
            try:
                await self.poll_v1()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("v1 poll: %s", type(exc).__name__)

    async def poll_v1(self) -> None:
        async with viewer_transaction(self.engine, Viewer.service(), self.settings) as db:
            if self._v1_since is None:
                self._v1_since = await store.now(db)
            rows = await store.messages_since(db, "v1", self._v1_since - LOOKBACK, POLL_LIMIT)
        for row in rows:
            self.hub.publish(polled("v1", row))
        if rows:
            newest: datetime = rows[-1][2]
            if len(rows) == POLL_LIMIT:  # more to read: go on from the newest, no look back
                newest += LOOKBACK
            self._v1_since = max(self._v1_since, newest)


def started(hub: Hub, engine: AsyncEngine, settings: Settings) -> Sources:
    """The hub's sources, started with its first subscription (stopped by the app)."""
    if hub.sources is None:
        hub.sources = Sources(hub, engine, settings)
    return hub.sources
