"""Subscriptions (DESIGN §10) end to end: the gateway served by uvicorn on 127.0.0.1, a real
WebSocket client speaking graphql-transport-ws, an SSE client, rows written by SQL straight into
the stores (as the v1 and v2 applications would) and through ``postMessage``."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import orjson
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from gateway.auth import issue_token
from gateway.db import (
    StatementCounter,
    Viewer,
    create_engine,
    end_transaction,
    in_use,
    migrate,
    open_transaction,
)
from gateway.http.app import create_app
from gateway.settings import Realtime, Settings
from gateway.tools.embedded import EmbeddedPostgres
from resolvers import subscriptions as resolver_module
from schema.engine import events as events_module
from schema.engine.events import SHARE_S
from tests.conftest import JWT_SECRET, Server, render
from tests.factories import insert, make_user, make_v1_conversation, make_v2_conversation
from tests.graphql import gid
from tests.pgbouncer import PgBouncer
from tests.serving import served
from tests.test_migration_faults import owner_connection, postmaster_pid, restart

MESSAGE_ADDED = """
subscription ($id: ID!) {
  messageAdded(conversationId: $id) { __typename id text source conversationTurn }
}"""
ACTIVITY = "subscription { conversationActivity { __typename id title lastMessageAt } }"
POST = """
mutation ($input: PostMessageInput!) { postMessage(input: $input) { message { id } } }"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, realtime=Realtime(v1_poll_s=0.2))


@contextlib.asynccontextmanager
async def serving(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Starlette]:
    """The app on a free port (``app.state.url``), lifespan on (it stops the hub's sources)."""
    app = create_app(settings, engine=engine)
    async with served(app, lifespan="on") as port:
        app.state.url = f"127.0.0.1:{port}/graphql"
        yield app


def token(settings: Settings, user: UUID | str, role: str = "authenticated", **kw: Any) -> str:
    return issue_token(settings, str(user), role=role, **kw)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class Socket:
    """A graphql-transport-ws client."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, app: Starlette, bearer: str | None, *, header: str | None = None
    ) -> AsyncIterator[Socket]:
        headers = {"Authorization": f"Bearer {header}"} if header else None
        async with websockets.connect(
            f"ws://{app.state.url}", subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            additional_headers=headers,
        ) as ws:
            payload = {"Authorization": f"Bearer {bearer}"} if bearer else {}
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            yield cls(ws)

    async def acked(self) -> Socket:
        assert json.loads(await asyncio.wait_for(self.ws.recv(), 5)) == {"type": "connection_ack"}
        return self

    async def follow(self, app: Starlette, source: str, conversation: UUID) -> None:
        """Subscribes (id "1") to the conversation's messages and waits until it has passed
        its checks."""
        await self.subscribe("1", MESSAGE_ADDED, id=gid(f"{source.upper()}Conversation",
                                                        conversation))
        await until(watching(app, source, conversation))

    async def subscribe(self, sid: str, query: str, **variables: Any) -> None:
        await self.ws.send(json.dumps(
            {"id": sid, "type": "subscribe", "payload": {"query": query, "variables": variables}}
        ))

    async def message(self, within: float = 5.0) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), within))  # type: ignore[no-any-return]

    async def texts_by_subscription(self, count: int) -> dict[str, str]:
        """The text of the next ``count`` messageAdded events, by subscription id."""
        texts = {}
        for _ in range(count):
            message = await self.message()
            texts[message["id"]] = message["payload"]["data"]["messageAdded"]["text"]
        return texts

    async def nothing(self, within: float = 0.5) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.ws.recv(), within)


def watching(
    app: Starlette, source: str, conversation: UUID, count: int = 1
) -> Callable[[], bool]:
    """Whether ``count`` subscriptions to the conversation have passed their checks."""
    return lambda: sum(
        s.started for s in app.state.hub.messages.get((source, conversation), ())
    ) == count


def following(app: Starlette, count: int = 1) -> Callable[[], bool]:
    """Whether ``count`` activity subscriptions have passed their checks."""
    return lambda: sum(s.started for s in app.state.hub.activity) == count


async def post(app: Starlette, bearer: str, conversation: str, text: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"http://{app.state.url}",
            json={"query": POST, "variables": {"input": {"conversationId": conversation,
                                                          "text": text}}},
            headers={"Authorization": f"Bearer {bearer}"},
        )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


async def add_v2_message(owner: asyncpg.Connection, conversation: UUID, user: UUID,
                         text: str) -> UUID:
    return await insert(owner, "v2_messages", conversation_id=conversation, user_id=user,
                        role="user", message=text)


async def add_v1_message(owner: asyncpg.Connection, conversation: UUID, user: UUID,
                         text: str) -> UUID:
    """As the v1 application writes: the message, and the conversation's last_message_at."""
    async with owner.transaction():
        message = await insert(owner, "chat_messages", conversation_id=conversation,
                               user_id=user, role="user", message=text)
        await owner.execute(
            "UPDATE chat_conversations SET last_message_at = now() WHERE id = $1", conversation
        )
    return message


async def test_every_writer_reaches_the_owner_once_in_order(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    """v2 rows by SQL (the trigger), postMessage, v1 rows by SQL (the poll) and postMessage
    into v1 (announced by its own statement, and found again by the poll: sent once)."""
    user = await make_user(owner)
    v2 = await make_v2_conversation(owner, user)
    v1 = await make_v1_conversation(owner, user)
    bearer = token(settings, user)
    async with serving(settings, engine) as app, Socket.open(app, bearer) as socket:
        await socket.acked()
        await socket.subscribe("v2", MESSAGE_ADDED, id=gid("V2Conversation", v2))
        await socket.subscribe("v1", MESSAGE_ADDED, id=gid("V1Conversation", v1))
        await until(watching(app, "v2", v2))
        await until(watching(app, "v1", v1))

        received: dict[str, list[dict[str, Any]]] = {"v1": [], "v2": []}

        async def receive(count: int) -> None:
            while len(received["v1"]) + len(received["v2"]) < count:
                message = await socket.message()
                assert message["type"] == "next", message
                received[message["id"]].append(message["payload"]["data"]["messageAdded"])

        by_sql = await add_v2_message(owner, v2, user, "by SQL")
        await post(app, bearer, gid("V2Conversation", v2), "by postMessage")
        await add_v1_message(owner, v1, user, "v1 by SQL")
        # (the poll finds it within GATEWAY_V1_POLL_S: a message the gateway wrote meanwhile
        # would be sent first)
        await receive(3)
        await post(app, bearer, gid("V1Conversation", v1), "v1 by postMessage")
        await receive(4)
        assert [m["text"] for m in received["v2"]] == ["by SQL", "by postMessage"]
        assert received["v2"][0] == {"__typename": "V2Message", "id": gid("V2Message", by_sql),
                                     "text": "by SQL", "source": "V2", "conversationTurn": None}
        assert [m["text"] for m in received["v1"]] == ["v1 by SQL", "v1 by postMessage"]
        assert {m["__typename"] for m in received["v1"]} == {"V1Message"}
        # the v1 poll finds the posted message again: it is not sent twice
        await asyncio.sleep(4 * settings.realtime.v1_poll_s)
        await socket.nothing()


async def test_another_user_never_receives_them_an_admin_does(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    settings = replace(settings, realtime=Realtime(v1_poll_s=0.2, queue_size=2000))
    user, other = await make_user(owner), await make_user(owner, "Léa Petit")
    admin = await make_user(owner, "Ada Admin", is_admin=True)
    mine = await make_v2_conversation(owner, user)
    theirs = await make_v2_conversation(owner, other)
    async with serving(settings, engine) as app, \
            Socket.open(app, token(settings, other)) as spy, \
            Socket.open(app, token(settings, admin)) as watcher:
        await spy.acked()
        await watcher.acked()
        # the other user cannot subscribe to the conversation: NOT_FOUND, nothing sent after
        await spy.subscribe("peek", MESSAGE_ADDED, id=gid("V2Conversation", mine))
        refused = await spy.message()
        assert refused["type"] == "error", refused
        assert refused["payload"][0]["extensions"]["code"] == "NOT_FOUND"
        await spy.subscribe("own", MESSAGE_ADDED, id=gid("V2Conversation", theirs))
        await spy.subscribe("activity", ACTIVITY)
        await watcher.subscribe("admin", MESSAGE_ADDED, id=gid("V2Conversation", mine))
        await until(following(app))
        await until(watching(app, "v2", mine))
        await until(watching(app, "v2", theirs))

        await owner.executemany(
            "INSERT INTO v2_messages (conversation_id, user_id, role, message) "
            "VALUES ($1, $2, 'user', $3)",
            [(mine, user, f"private {i}") for i in range(1000)],
        )
        texts = []
        while len(texts) < 1000:
            message = await watcher.message()
            texts.append(message["payload"]["data"]["messageAdded"]["text"])
        assert texts == [f"private {i}" for i in range(1000)]  # the admin: all, in order
        await spy.nothing(1.0)  # 1,000 events, none leaked


async def test_a_rolled_back_write_sends_nothing(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    user = await make_user(owner)
    v2 = await make_v2_conversation(owner, user)
    async with serving(settings, engine) as app, Socket.open(app, token(settings, user)) as s:
        await s.acked()
        await s.follow(app, "v2", v2)
        transaction = owner.transaction()
        await transaction.start()
        await add_v2_message(owner, v2, user, "rolled back")
        await transaction.rollback()
        await add_v2_message(owner, v2, user, "committed")
        first = await s.message()
        assert first["payload"]["data"]["messageAdded"]["text"] == "committed"
        await s.nothing()


async def test_conversation_activity_is_the_viewers_own(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    user, other = await make_user(owner), await make_user(owner, "Léa Petit")
    v2 = await make_v2_conversation(owner, user, title="Mine")
    v1 = await make_v1_conversation(owner, user)
    theirs = await make_v2_conversation(owner, other, title="Theirs")
    async with serving(settings, engine) as app, Socket.open(app, token(settings, user)) as s:
        await s.acked()
        await s.subscribe("a", ACTIVITY)
        await until(following(app))
        await add_v2_message(owner, theirs, other, "not mine")
        await owner.execute("UPDATE v2_conversations SET last_message_at = now() WHERE id = $1",
                            theirs)
        await owner.execute("UPDATE v2_conversations SET last_message_at = now() WHERE id = $1",
                            v2)
        moved = (await s.message())["payload"]["data"]["conversationActivity"]
        assert (moved["__typename"], moved["id"], moved["title"]) == (
            "V2Conversation", gid("V2Conversation", v2), "Mine")
        await add_v1_message(owner, v1, user, "v1 moves too")
        moved = (await s.message())["payload"]["data"]["conversationActivity"]
        assert moved["id"] == gid("V1Conversation", v1)
        await s.nothing()


async def test_refusals(settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection) -> None:
    user = await make_user(owner)
    v2 = await make_v2_conversation(owner, user)
    async with serving(settings, engine) as app:
        # a bad token closes the socket with 4401
        async with Socket.open(app, "not-a-token") as s:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await s.message()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        # the token may come in the upgrade request's header instead
        async with Socket.open(app, None, header=token(settings, user)) as s:
            await s.acked()
            # a malformed id and an id of another type: BAD_USER_INPUT, no subscription
            await s.subscribe("bad", MESSAGE_ADDED, id="bm9wZQ==")
            assert (await s.message())["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
            await s.subscribe("type", MESSAGE_ADDED, id=gid("Project", uuid4()))
            assert (await s.message())["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
            # an anonymous viewer has no activity to follow
        async with Socket.open(app, None) as s:
            await s.acked()
            await s.subscribe("anon", ACTIVITY)
            assert (await s.message())["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            await s.subscribe("anon2", MESSAGE_ADDED, id=gid("V2Conversation", v2))
            assert (await s.message())["payload"][0]["extensions"]["code"] == "NOT_FOUND"
        assert not app.state.hub.messages and not app.state.hub.activity


async def test_limits_per_connection_and_per_viewer(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    settings = replace(settings, realtime=Realtime(
        v1_poll_s=0.2, max_subscriptions_per_connection=2, max_connections_per_viewer=2))
    user = await make_user(owner)
    v2 = await make_v2_conversation(owner, user)
    bearer = token(settings, user)
    async with serving(settings, engine) as app, \
            Socket.open(app, bearer) as first, Socket.open(app, bearer) as second:
        await first.acked()
        await second.acked()
        for sid in ("1", "2", "3"):
            await first.subscribe(sid, MESSAGE_ADDED, id=gid("V2Conversation", v2))
        refused = await first.message()
        assert refused["id"] == "3" and refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "at most 2 subscriptions" in refused["payload"][0]["message"]
        async with Socket.open(app, bearer) as third:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await third.message()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
            assert "too many connections" in closed.value.rcvd.reason


async def test_a_slow_consumer_is_closed_with_4429(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    settings = replace(settings, realtime=Realtime(v1_poll_s=0.2, queue_size=5))
    user = await make_user(owner)
    v2 = await make_v2_conversation(owner, user)
    async with serving(settings, engine) as app, Socket.open(app, token(settings, user)) as s:
        await s.acked()
        await s.follow(app, "v2", v2)
        await owner.executemany(
            "INSERT INTO v2_messages (conversation_id, user_id, role, message) "
            "VALUES ($1, $2, 'user', $3)",
            [(v2, user, "x" * 1000) for _ in range(200)],
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await s.message()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
        await until(lambda: not app.state.hub.messages)  # its subscription is gone


async def test_the_subscription_ends_when_the_token_expires(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    user = await make_user(owner)
    v2 = await make_v2_conversation(owner, user)
    # accepted for about two more seconds (exp is 28 s ago; the leeway is 30 s)
    short = token(settings, user, ttl_s=-28)
    async with serving(settings, engine) as app, Socket.open(app, short) as s:
        await s.acked()
        await s.subscribe("1", MESSAGE_ADDED, id=gid("V2Conversation", v2))
        ended = await s.message(within=10)
        assert ended["type"] == "next"
        assert ended["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert (await s.message()) == {"id": "1", "type": "complete"}


@pytest.mark.parametrize("every_place_kept", [False, True])
async def test_events_survive_a_lost_listen_connection(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection, every_place_kept: bool
) -> None:
    """The LISTEN backend is killed; a message written before it is back is read once it is
    (the catch-up), one written after arrives as usual. Request transactions keep their
    connections (``gateway.db.take_connection``): with every place in the pool kept, the
    LISTEN connection takes a kept one instead of waiting for the pool's timeout (30 s)."""
    user = await make_user(owner)
    v2 = await make_v2_conversation(owner, user)
    async with serving(settings, engine) as app, Socket.open(app, token(settings, user)) as s:
        await s.acked()
        await s.follow(app, "v2", v2)
        sources = app.state.hub.sources
        if every_place_kept:
            size = engine.pool.size()  # type: ignore[attr-defined]
            opened = await asyncio.gather(
                *(open_transaction(engine, Viewer.service(), settings) for _ in range(size))
            )
            for conn in opened:
                await end_transaction(conn, commit=True)
            assert engine.pool.checkedout() == size  # type: ignore[attr-defined]
            assert in_use(engine) == 0
        assert await owner.fetchval("SELECT pg_terminate_backend($1)", sources.backend_pid)
        await add_v2_message(owner, v2, user, "while away")
        await until(lambda: sources.reconnections >= 1 and sources.listening.is_set())
        await add_v2_message(owner, v2, user, "after")
        texts = [(await s.message())["payload"]["data"]["messageAdded"]["text"] for _ in "ab"]
        assert texts == ["while away", "after"]
        await s.nothing()


async def test_server_sent_events(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    user = await make_user(owner)
    v2 = await make_v2_conversation(owner, user)
    async with serving(settings, engine) as app, httpx.AsyncClient(timeout=10) as http:
        async with http.stream(
            "POST", f"http://{app.state.url}",
            json={"query": MESSAGE_ADDED, "variables": {"id": gid("V2Conversation", v2)}},
            headers={"Accept": "text/event-stream",
                     "Authorization": f"Bearer {token(settings, user)}"},
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            await until(watching(app, "v2", v2))
            await add_v2_message(owner, v2, user, "over SSE")
            lines = response.aiter_lines()
            event = await asyncio.wait_for(anext(lines), 5)
            data = await asyncio.wait_for(anext(lines), 5)
        assert event == "event: next"
        payload = json.loads(data.removeprefix("data: "))
        assert payload["data"]["messageAdded"]["text"] == "over SSE"
        await until(lambda: not app.state.hub.messages)  # the client left: unsubscribed
        # refused before it starts: one next event with the error, then complete
        response = await http.post(
            f"http://{app.state.url}",
            json={"query": MESSAGE_ADDED, "variables": {"id": gid("V2Conversation", uuid4())}},
            headers={"Accept": "text/event-stream",
                     "Authorization": f"Bearer {token(settings, user)}"},
        )
        assert "NOT_FOUND" in response.text and "event: complete" in response.text


async def test_subscriptions_survive_a_postgresql_restart(tmp_path: Path) -> None:
    """A dedicated server (the shared one serves other tests) is killed and started again
    while a subscription is open: the worker listens again and the next message arrives."""
    embedded = await asyncio.to_thread(EmbeddedPostgres(tmp_path).start)
    engine: AsyncEngine | None = None
    try:
        url = embedded.url()
        await asyncio.to_thread(migrate.upgrade, render(url))
        conn = await owner_connection(url)
        try:
            user = await make_user(conn)
            v2 = await make_v2_conversation(conn, user)
        finally:
            await conn.close()
        settings = Settings(jwt_secret=JWT_SECRET, env="test", realtime=Realtime(v1_poll_s=0.2))
        engine = create_engine(embedded.url(user="authenticator"), settings, pool_size=2)
        async with serving(settings, engine) as app, \
                Socket.open(app, token(settings, user)) as s:
            await s.acked()
            await s.follow(app, "v2", v2)
            sources = app.state.hub.sources
            killed = postmaster_pid(embedded)
            os.kill(killed, signal.SIGKILL)
            await until(lambda: not sources.listening.is_set())
            await asyncio.to_thread(restart, embedded, killed)
            await until(sources.listening.is_set, within=30)
            conn = await owner_connection(url)
            try:
                await add_v2_message(conn, v2, user, "after the restart")
            finally:
                await conn.close()
            received = await s.message(within=10)
            assert received["payload"]["data"]["messageAdded"]["text"] == "after the restart"
    finally:
        if engine is not None:
            await engine.dispose()
        await asyncio.to_thread(embedded.stop)


async def test_one_read_per_event_for_the_same_viewers_subscribers(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection,
    statements: StatementCounter,
) -> None:
    """Three tabs of one user, one message: one transaction (its set-up and one SELECT) for
    the three; another viewer's subscription (an admin) reads apart."""
    user = await make_user(owner)
    admin = await make_user(owner, "Ada Admin", is_admin=True)
    v2 = await make_v2_conversation(owner, user)
    bearer = token(settings, user)
    async with serving(settings, engine) as app, contextlib.AsyncExitStack() as stack:
        tabs = [await stack.enter_async_context(Socket.open(app, bearer)) for _ in range(3)]
        for tab in tabs:
            await tab.acked()
            await tab.subscribe("1", MESSAGE_ADDED, id=gid("V2Conversation", v2))
        await until(watching(app, "v2", v2, 3))
        statements.reset()
        await add_v2_message(owner, v2, user, "once")
        for tab in tabs:
            assert (await tab.message())["payload"]["data"]["messageAdded"]["text"] == "once"
        assert (statements.total, statements.reads) == (2, 1)

        watcher = await stack.enter_async_context(Socket.open(app, token(settings, admin)))
        await watcher.acked()
        await watcher.subscribe("1", MESSAGE_ADDED, id=gid("V2Conversation", v2))
        await until(watching(app, "v2", v2, 4))
        await asyncio.sleep(SHARE_S)  # the first message's shared read has expired
        statements.reset()
        await add_v2_message(owner, v2, user, "twice")
        for tab in [*tabs, watcher]:
            assert (await tab.message())["payload"]["data"]["messageAdded"]["text"] == "twice"
        assert (statements.total, statements.reads) == (4, 2)


async def test_metrics_count_subscriptions_and_events(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    settings = replace(settings, metrics=True)
    user = await make_user(owner)
    v2 = await make_v2_conversation(owner, user)
    async with serving(settings, engine) as app, Socket.open(app, token(settings, user)) as s:
        await s.acked()
        await s.subscribe("1", MESSAGE_ADDED, id=gid("V2Conversation", v2))
        await s.subscribe("2", ACTIVITY)
        await until(watching(app, "v2", v2))
        await add_v2_message(owner, v2, user, "counted")
        assert (await s.message())["id"] == "1"
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://{app.state.url.removesuffix('/graphql')}/metrics")).text
    assert 'mwplu_subscriptions{field="messageAdded"} 1.0' in text
    assert 'mwplu_subscriptions{field="conversationActivity"} 1.0' in text
    assert "mwplu_subscription_connections 1.0" in text
    assert "mwplu_subscription_events_total 1.0" in text
    assert "mwplu_realtime_listening 1.0" in text
    assert "mwplu_subscription_slow_consumers_total 0.0" in text


async def test_queries_and_mutations_stay_on_http(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    user = await make_user(owner)
    async with serving(settings, engine) as app, Socket.open(app, token(settings, user)) as s:
        await s.acked()
        await s.subscribe("q", "{ viewer { id } }")
        answer = await s.message()
        assert answer["type"] == "next" and answer["payload"]["data"] == {"viewer": None}
        assert answer["payload"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert await s.message() == {"id": "q", "type": "complete"}
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"http://{app.state.url}", json={"query": "{ viewer { id } }"},
                headers={"Accept": "text/event-stream",
                         "Authorization": f"Bearer {token(settings, user)}"},
            )
        assert response.status_code == 200
        assert response.text.startswith("event: next") and "BAD_USER_INPUT" in response.text
        assert response.text.endswith("event: complete\r\ndata: \r\n\r\n")


async def test_behind_pgbouncer_with_a_direct_listen_url(
    server: Server, database: str, pgbouncer: PgBouncer, owner: asyncpg.Connection
) -> None:
    """Requests and re-reads through PgBouncer in transaction mode, LISTEN on its own direct
    connection (DATABASE_LISTEN_URL); without that URL, subscribing says what to set."""
    direct = server.database_url(database, "authenticator")
    user = await make_user(owner)
    v2 = await make_v2_conversation(owner, user)
    v1 = await make_v1_conversation(owner, user)
    for listen_url in (None, render(direct)):
        settings = Settings(jwt_secret=JWT_SECRET, env="test", pgbouncer=True,
                            realtime=Realtime(v1_poll_s=0.2, listen_url=listen_url))
        engine = create_engine(pgbouncer.url(direct), settings, pool_size=2)
        bearer = token(settings, user)
        try:
            async with serving(settings, engine) as app, Socket.open(app, bearer) as s:
                await s.acked()
                await s.subscribe("v2", MESSAGE_ADDED, id=gid("V2Conversation", v2))
                if listen_url is None:
                    refused = await s.message()
                    assert refused["payload"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
                    assert "DATABASE_LISTEN_URL" in refused["payload"][0]["message"]
                    continue
                await s.subscribe("v1", MESSAGE_ADDED, id=gid("V1Conversation", v1))
                await until(watching(app, "v2", v2))
                await until(watching(app, "v1", v1))
                await add_v2_message(owner, v2, user, "through PgBouncer")
                await post(app, bearer, gid("V1Conversation", v1), "posted through PgBouncer")
                assert await s.texts_by_subscription(2) == {
                    "v2": "through PgBouncer", "v1": "posted through PgBouncer"
                }
        finally:
            await engine.dispose()


# -- found in review -----------------------------------------------------------------------------


async def test_a_tab_that_leaves_mid_read_does_not_end_the_others(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tabs of one user share each event's read; the tabs that leave while it runs (their
    operations cancelled) must not cancel it for the one that stays."""
    real = events_module._read_once

    async def slow(*args: Any) -> Any:
        await asyncio.sleep(0.5)
        return await real(*args)

    monkeypatch.setattr(events_module, "_read_once", slow)
    user = await make_user(owner)
    v2 = await make_v2_conversation(owner, user)
    bearer = token(settings, user)
    async with serving(settings, engine) as app, Socket.open(app, bearer) as stays:
        await stays.acked()
        async with contextlib.AsyncExitStack() as leaving:
            tabs = [await leaving.enter_async_context(Socket.open(app, bearer)) for _ in "ab"]
            for tab in tabs:
                await tab.acked()
                await tab.subscribe("1", MESSAGE_ADDED, id=gid("V2Conversation", v2))
            await until(watching(app, "v2", v2, 2))
            await stays.subscribe("1", MESSAGE_ADDED, id=gid("V2Conversation", v2))
            await until(watching(app, "v2", v2, 3))
            await add_v2_message(owner, v2, user, "first")
            await asyncio.sleep(0.2)  # the shared read is under way: the first two tabs leave
        received = await stays.message()
        assert received["payload"]["data"]["messageAdded"]["text"] == "first"
        await add_v2_message(owner, v2, user, "second")
        received = await stays.message()
        assert received["payload"]["data"]["messageAdded"]["text"] == "second"
        await until(watching(app, "v2", v2, 1))


async def test_trusted_documents_apply_to_websockets(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection, tmp_path: Path
) -> None:
    user = await make_user(owner)
    v2 = await make_v2_conversation(owner, user)
    manifest = tmp_path / "trusted.json"
    manifest.write_bytes(orjson.dumps({hashlib.sha256(MESSAGE_ADDED.encode()).hexdigest():
                                       MESSAGE_ADDED}))
    trusted = replace(settings, trusted_documents=manifest)
    async with serving(trusted, engine) as app, Socket.open(app, token(trusted, user)) as s:
        await s.acked()
        await s.subscribe("other", ACTIVITY)
        refused = await s.message()
        assert refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"
        await s.subscribe("trusted", MESSAGE_ADDED, id=gid("V2Conversation", v2))
        await until(watching(app, "v2", v2))
        await add_v2_message(owner, v2, user, "trusted")
        assert (await s.message())["payload"]["data"]["messageAdded"]["text"] == "trusted"


async def test_a_message_committed_while_the_subscription_is_checked_arrives(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = await make_user(owner)
    v2 = await make_v2_conversation(owner, user)
    real = resolver_module.start_messages

    async def writes_meanwhile(*args: Any) -> Any:
        since = await real(*args)
        await add_v2_message(owner, v2, user, "during the check")
        await asyncio.sleep(0.1)  # its notification is in before the stream starts
        return since

    monkeypatch.setattr(resolver_module, "start_messages", writes_meanwhile)
    async with serving(settings, engine) as app, Socket.open(app, token(settings, user)) as s:
        await s.acked()
        await s.subscribe("1", MESSAGE_ADDED, id=gid("V2Conversation", v2))
        received = await s.message()
        assert received["payload"]["data"]["messageAdded"]["text"] == "during the check"


async def test_events_naming_rows_the_subscriber_cannot_read_are_dropped(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    """RLS decides, not the event: 1,000 announcements routed to another user's own
    conversation and activity, each naming the owner's message or conversation (as a forged
    or mistaken NOTIFY would), reach that user as nothing; their own message still does."""
    settings = replace(settings, realtime=Realtime(v1_poll_s=0.2, queue_size=2000))
    user, other = await make_user(owner), await make_user(owner, "Léa Petit")
    mine = await make_v2_conversation(owner, user)
    theirs = await make_v2_conversation(owner, other)
    private = [await add_v2_message(owner, mine, user, f"private {i}") for i in range(500)]
    async with serving(settings, engine) as app, \
            Socket.open(app, token(settings, other)) as spy:
        await spy.acked()
        await spy.subscribe("own", MESSAGE_ADDED, id=gid("V2Conversation", theirs))
        await spy.subscribe("activity", ACTIVITY)
        await until(watching(app, "v2", theirs))
        await until(following(app))
        before = app.state.hub.delivered
        forged = [
            {"k": "m", "s": "v2", "id": str(m), "c": str(theirs), "u": str(other)}
            for m in private
        ] + [
            {"k": "c", "s": "v2", "id": str(mine), "u": str(other),
             "at": f"2026-01-01T00:{i // 60:02}:{i % 60:02}+00:00"}
            for i in range(500)
        ]
        async with owner.transaction():
            for payload in forged:
                await owner.execute("SELECT pg_notify('mwplu_events', $1)", json.dumps(payload))
        await until(lambda: app.state.hub.delivered - before == 1000, within=10)
        await add_v2_message(owner, theirs, other, "their own")
        received = await spy.message(within=30)
        assert received["id"] == "own"  # nothing of the 1,000 before it
        assert received["payload"]["data"]["messageAdded"]["text"] == "their own"
        await spy.nothing(1.0)


async def test_connections_are_given_back_when_clients_leave(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    user = await make_user(owner)
    v2 = await make_v2_conversation(owner, user)
    bearer = token(settings, user)
    async with serving(settings, engine) as app:
        hub = app.state.hub
        async with Socket.open(app, bearer) as s:
            await s.acked()
            await s.follow(app, "v2", v2)
            assert sum(hub.connections.values()) == 1
        await until(lambda: not hub.connections and not hub.messages)
        async with httpx.AsyncClient(timeout=10) as http, http.stream(
            "POST", f"http://{app.state.url}",
            json={"query": MESSAGE_ADDED, "variables": {"id": gid("V2Conversation", v2)}},
            headers={"Accept": "text/event-stream", "Authorization": f"Bearer {bearer}"},
        ):
            await until(watching(app, "v2", v2))
            assert sum(hub.connections.values()) == 1
        await until(lambda: not hub.connections and not hub.messages)


async def test_a_migration_announces_its_conversation_not_each_copied_message(
    server: Server, database: str, owner: asyncpg.Connection
) -> None:
    """A bulk migration copies thousands of messages: every worker would parse one
    notification per message. A migration (the same store function as the bulk one's)
    announces the new v2 conversation's activity only."""
    user = await make_user(owner)
    v1 = await make_v1_conversation(owner, user, messages=30)
    heard: list[dict[str, Any]] = []
    listener = await server.connect(database)
    await listener.add_listener("mwplu_events", lambda *a: heard.append(json.loads(a[-1])))
    try:
        settings = Settings(jwt_secret=JWT_SECRET, env="test")
        engine = create_engine(server.database_url(database, "authenticator"), settings,
                               pool_size=2)
        try:
            app = create_app(settings, engine=engine)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://gateway.test") as http:
                body = (await http.post("/graphql", json={
                    "query": "mutation ($id: ID!) { migrateConversation(input: "
                             "{conversationId: $id}) { conversation { id } } }",
                    "variables": {"id": gid("V1Conversation", v1)},
                }, headers={"Authorization": f"Bearer {token(settings, user)}"})).json()
        finally:
            await engine.dispose()
        assert "errors" not in body, body
        await asyncio.sleep(0.3)
        # where the v1 conversation went, and the copy's activity; no message
        assert sorted(h["k"] for h in heard) == ["c", "x"]
        moved = next(h for h in heard if h["k"] == "x")
        assert (moved["id"], moved["u"]) == (str(v1), str(user))
        assert moved["to"] == next(h for h in heard if h["k"] == "c")["id"]
    finally:
        await listener.close()


async def test_a_migrated_v1_conversation_ends_its_subscriptions_naming_the_copy(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    """A migrated v1 conversation is read-only: its subscribers would wait for ever. They are
    told where it went (CONFLICT with extensions.v2ConversationId) and their stream ends."""
    user = await make_user(owner)
    v1 = await make_v1_conversation(owner, user, messages=4)
    bearer = token(settings, user)
    async with serving(settings, engine) as app, Socket.open(app, bearer) as s:
        await s.acked()
        await s.subscribe("1", MESSAGE_ADDED, id=gid("V1Conversation", v1))
        await until(watching(app, "v1", v1))
        async with httpx.AsyncClient() as http:
            body = (await http.post(f"http://{app.state.url}", json={
                "query": "mutation ($id: ID!) { migrateConversation(input: "
                         "{conversationId: $id}) { conversation { id } } }",
                "variables": {"id": gid("V1Conversation", v1)},
            }, headers={"Authorization": f"Bearer {bearer}"})).json()
        copy = body["data"]["migrateConversation"]["conversation"]["id"]
        ended = await s.message()
        assert ended["type"] == "next" and ended["payload"]["data"] is None
        error = ended["payload"]["errors"][0]
        assert error["extensions"]["code"] == "CONFLICT"
        assert error["extensions"]["v2ConversationId"] == copy
        assert await s.message() == {"id": "1", "type": "complete"}
        await until(lambda: not app.state.hub.messages)


async def test_a_write_through_one_worker_reaches_subscribers_of_another(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection, gateway_url: Any
) -> None:
    """Two workers (two apps, each with its engine, its hub and its LISTEN connection, as
    uvicorn's worker processes have): a postMessage through one reaches the subscriber on the
    other, for v1 (announced by the insert) and v2 (the trigger)."""
    user = await make_user(owner)
    v1 = await make_v1_conversation(owner, user)
    v2 = await make_v2_conversation(owner, user)
    bearer = token(settings, user)
    other = create_engine(gateway_url, settings, pool_size=2)
    try:
        async with serving(settings, engine) as writer, serving(settings, other) as reader, \
                Socket.open(reader, bearer) as s:
            await s.acked()
            await s.follow(reader, "v2", v2)
            await s.subscribe("v1", MESSAGE_ADDED, id=gid("V1Conversation", v1))
            await until(watching(reader, "v1", v1))
            await post(writer, bearer, gid("V2Conversation", v2), "v2 through the other")
            await post(writer, bearer, gid("V1Conversation", v1), "v1 through the other")
            assert await s.texts_by_subscription(2) == {
                "1": "v2 through the other", "v1": "v1 through the other"
            }
            assert not writer.state.hub.messages  # the writer's worker holds no subscription
    finally:
        await other.dispose()


async def test_pages_of_allowed_origins_may_call_the_graph(
    settings: Settings, engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    """A frontend served from another origin (GATEWAY_CORS_ORIGINS): its preflight and POST
    get CORS headers and its WebSocket handshake is accepted; another origin's are not."""
    settings = replace(settings, cors_origins=("https://app.example",))
    user = await make_user(owner)
    v2 = await make_v2_conversation(owner, user)
    bearer = token(settings, user)
    async with serving(settings, engine) as app, httpx.AsyncClient() as http:
        url = f"http://{app.state.url}"
        preflight = {"Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization, content-type"}
        allowed = await http.options(url, headers={"Origin": "https://app.example", **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        refused = await http.options(url, headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in refused.headers
        answer = await http.post(url, json={"query": "{ viewer { id } }"}, headers={
            "Origin": "https://app.example", "Authorization": f"Bearer {bearer}"})
        assert answer.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
        assert answer.json()["data"]["viewer"]["id"]

        async with websockets.connect(
            f"ws://{app.state.url}", subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            origin="https://app.example",  # type: ignore[arg-type]
        ) as ws:
            s = Socket(ws)
            await ws.send(json.dumps({"type": "connection_init",
                                      "payload": {"Authorization": f"Bearer {bearer}"}}))
            await s.acked()
            await s.follow(app, "v2", v2)
        with pytest.raises(websockets.InvalidStatus) as rejected:
            async with websockets.connect(
                f"ws://{app.state.url}", subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                origin="https://evil.example",  # type: ignore[arg-type]
            ):
                pass
        assert rejected.value.response.status_code == 403
