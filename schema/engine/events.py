"""Subscriptions through the engine (DESIGN §10): each event names a row, which is read as the
subscriber with the subscription's selection, in a transaction of its own. A row the
subscriber cannot read (RLS) is not sent.

graphql-core calls a subscription field's resolver once for the source stream, then executes
the selection once per event. Here the source stream does the reading (it must be able to drop
an event), and the per-event execution only hands its result on
(``schema.execution.EngineExecutionContext``).

Subscribers of the same viewer waiting for the same event with the same document share one
read: a user with the conversation open in ten tabs costs one transaction per message.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from graphql import GraphQLError, GraphQLObjectType, located_error
from graphql.execution.collect_fields import collect_fields

from gateway.auth import expires_at
from gateway.context import Subscriber
from gateway.db.failures import unavailable
from gateway.errors import BadUserInput, Conflict, ServiceUnavailable, Unauthenticated
from gateway.realtime import Event, SlowConsumer, Subscription
from gateway.realtime.events import MIGRATED
from gateway.realtime.sources import started
from resolvers import subscriptions
from resolvers.ids import to_global_id
from schema.engine.cache import compile_operation
from schema.engine.compile import CompileError
from schema.engine.plan import OperationPlan
from schema.engine.run import Run

READY_S = 5.0  # how long a new subscription waits for LISTEN to be in place
SHARE_S = 2.0  # how long a read event is kept for the same viewer's other subscriptions


@dataclass(frozen=True, slots=True)
class Rendered:
    """One event's response, read as the subscriber."""

    data: dict[str, Any] | None
    errors: list[GraphQLError]


class EventSource:
    """A subscription operation's executor, as its root field's resolver sees it
    (``info.root_value``): how to compile the operation's plan."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor

    def plan(self) -> OperationPlan:
        executor = self.executor
        root_type = executor.schema.subscription_type
        assert isinstance(root_type, GraphQLObjectType)
        fields = collect_fields(
            executor.schema, executor.fragments, executor.variable_values, root_type,
            executor.operation,
        ).grouped_field_set
        return compile_operation(
            executor.schema, executor.fragments, executor.variable_values, executor.operation,
            root_type, fields,
        )


# Reads by (viewer, plan, event), oldest first; each kept SHARE_S seconds. Each read runs in a
# task of its own, which every subscriber awaits shielded: one whose client leaves (its task
# cancelled) never cancels the read the others wait for.
_shared: OrderedDict[tuple[Any, ...], tuple[float, OperationPlan, asyncio.Task[Rendered | None]]]
_shared = OrderedDict()
# Event reads take turns at the pool with HTTP requests: at most this share of it at once, so
# that a burst of events for many viewers does not queue every query behind it.
READS_SHARE_OF_POOL = 0.5
_reading: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
_reading = weakref.WeakKeyDictionary()
RETRIES_S = (0.2, 0.5, 1.0)  # pauses before reading again when the database was unavailable


async def read_event(
    plan: OperationPlan, subscriber: Subscriber, key: tuple[str, UUID]
) -> Rendered | None:
    """The event's response as ``subscriber`` (None: it cannot read the row)."""
    viewer = subscriber.viewer
    share = (viewer.role, viewer.user_id, id(plan), key)
    now = time.monotonic()
    entry = _shared.get(share)
    if entry is None or entry[1] is not plan or now - entry[0] >= SHARE_S:
        while _shared and now - next(iter(_shared.values()))[0] >= SHARE_S:
            _shared.popitem(last=False)
        task = asyncio.create_task(_read(plan, subscriber, key))
        task.add_done_callback(_retrieved)
        entry = _shared[share] = (now, plan, task)
        _shared.move_to_end(share)
    return await asyncio.shield(entry[2])


def _retrieved(task: asyncio.Task[Rendered | None]) -> None:
    if not task.cancelled():
        task.exception()  # its awaiters have it; nobody left waiting is not an error


def _turns(settings: Any) -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    semaphore = _reading.get(loop)
    if semaphore is None:
        size = max(1, int(settings.pool_size * READS_SHARE_OF_POOL))
        semaphore = _reading[loop] = asyncio.Semaphore(size)
    return semaphore


async def _read(
    plan: OperationPlan, subscriber: Subscriber, key: tuple[str, UUID]
) -> Rendered | None:
    """One read of the event as the subscriber; read again (a few times) while the database
    is unavailable, so that a restart does not lose the event."""
    for pause in (*RETRIES_S, None):
        async with _turns(subscriber.settings):
            rendered = await _read_once(plan, subscriber, key)
        if rendered is None or pause is None or not rendered.errors or not all(
            unavailable(error.original_error) for error in rendered.errors
        ):
            return rendered
        await asyncio.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


async def _read_once(
    plan: OperationPlan, subscriber: Subscriber, key: tuple[str, UUID]
) -> Rendered | None:
    context = subscriber.event_context()
    run = Run(plan, context, event=key)
    try:
        data = await run.execute()
    except Exception as error:  # a load below the root failed: as one failing at the root
        data, run.errors = None, [*run.errors, _located(error, plan)]
    finally:
        run.release()
        await context.finish(commit=False)
    field = plan.roots[0].field
    if data is not None and data.get(field.key) is None and not run.errors:
        return None
    return Rendered(data, run.errors)


def _located(error: Exception, plan: OperationPlan) -> GraphQLError:
    if isinstance(error, GraphQLError):
        return error
    field = plan.roots[0].field
    return located_error(error, list(field.nodes), [field.key])


def _subscriber(info: Any) -> Subscriber:
    subscriber = info.context
    if not isinstance(subscriber, Subscriber):
        raise BadUserInput(
            "subscriptions are served over WebSocket (graphql-transport-ws) or "
            "Server-Sent Events (graphql-sse) on /graphql"
        )
    return subscriber


async def subscribe(info: Any) -> EventStream:
    """The checked source stream of a subscription field (``info``: strawberry's). Checks
    run before the stream starts, so a refusal is the subscription's error; from then on, its
    events are kept for it."""
    subscriber = _subscriber(info)
    source: EventSource = info.root_value
    try:
        plan = source.plan()
    except CompileError as refused:
        raise refused.error from None
    settings = subscriber.settings.realtime
    if subscriber.subscriptions >= settings.max_subscriptions_per_connection:
        raise BadUserInput(
            f"at most {settings.max_subscriptions_per_connection} subscriptions per connection"
        )
    subscriber.subscriptions += 1
    hub = subscriber.hub
    subscription: Subscription | None = None
    try:
        root = plan.roots[0]
        if subscriber.settings.pgbouncer and not settings.listen_url:
            # LISTEN through PgBouncer's transaction pool would hear nothing, silently.
            raise ServiceUnavailable(
                "subscriptions are off: behind PgBouncer, set DATABASE_LISTEN_URL to a URL "
                "that reaches PostgreSQL directly"
            )
        sources = started(hub, subscriber.engine, subscriber.settings)
        if not await sources.ready(READY_S):
            raise ServiceUnavailable("events cannot be received now: try again shortly")
        # Waiting before the checks, so that nothing committed meanwhile is missed: what it
        # receives is read as the subscriber anyway, and nothing is sent before they pass.
        if root.field.name == "messageAdded":
            store, conversation = root.args["conversation"]
            subscription = hub.subscribe(
                settings.queue_size, subscriber.overflowed, conversation=(store, conversation)
            )
            since = await subscriptions.start_messages(subscriber, store, conversation)
            noun = "Message"
        else:
            subscription = hub.subscribe(settings.queue_size, subscriber.overflowed)
            subscription.user_id, since = await subscriptions.start_activity(subscriber)
            noun = "Conversation"
        if hub.wants_v1():
            sources.v1_from(since)
        subscription.started = True
    except BaseException:
        if subscription is not None:
            hub.unsubscribe(subscription)
        subscriber.subscriptions -= 1
        raise
    return EventStream(plan, subscriber, subscription, noun)


class EventStream:
    """A subscription's events, each read as the subscriber (those it cannot read are left
    out). Ends with ``UNAUTHENTICATED`` when the token expires, ``SERVICE_UNAVAILABLE`` when
    the subscriber fell too far behind; ``aclose`` unsubscribes (also when never started)."""

    def __init__(
        self, plan: OperationPlan, subscriber: Subscriber, subscription: Subscription, noun: str
    ) -> None:
        self.plan = plan
        self.subscriber = subscriber
        self.subscription = subscription
        self.noun = noun
        self.expires = expires_at(subscriber.viewer)
        self.closed = False

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Rendered:
        if self.closed:
            raise StopAsyncIteration
        try:
            while True:
                event = await self._next_event()
                if event.kind == MIGRATED:
                    assert event.moved_to is not None
                    raise Conflict(
                        "this v1 conversation was migrated to v2 and is read-only: subscribe "
                        "to its copy",
                        v2ConversationId=to_global_id("V2Conversation", event.moved_to),
                    )
                key = (f"{event.source.upper()}{self.noun}", event.id)
                rendered = await read_event(self.plan, self.subscriber, key)
                if rendered is not None:
                    return rendered
        except BaseException:
            await self.aclose()
            raise

    async def _next_event(self) -> Event:
        queue_size = self.subscriber.settings.realtime.queue_size
        wait = None if self.expires is None else self.expires - time.time()
        try:
            if wait is not None and wait <= 0:
                raise TimeoutError
            return await self.subscription.next(wait)
        except TimeoutError:
            raise Unauthenticated("the token expired: the subscription ended") from None
        except SlowConsumer:
            raise ServiceUnavailable(
                f"the subscription fell more than {queue_size} events behind and was ended: "
                "subscribe again"
            ) from None

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.subscriber.hub.unsubscribe(self.subscription)
            self.subscriber.subscriptions -= 1
