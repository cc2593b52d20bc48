"""The subscribers: one WebSocket each (graphql-transport-ws), one ``messageAdded``
subscription each, all in this process; what each received, and when."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import websockets
from websockets.typing import Subprotocol

from bench.graph.servers import JWT_SECRET, Server
from bench.subscriptions.population import Population

SUBSCRIPTION = "subscription ($id: ID!) { messageAdded(conversationId: $id) { id text } }"
OPENING = 64  # sockets being opened at once


@dataclass
class Client:
    """One socket with one ``messageAdded`` subscription; what it received, when."""

    conversation: int
    token: str
    receipts: list[tuple[int, float]] = field(default_factory=list)  # (message number, time)
    problems: list[str] = field(default_factory=list)  # errors, closes, unreadable messages
    deflate: bool = False

    async def run(self, url: str, gid: str, opening: asyncio.Semaphore, compression: str | None,
                  opened: Callable[[], None], stop: asyncio.Event) -> None:
        """Open, subscribe, then read until ``stop``; failures are kept in ``problems``."""
        try:
            async with opening:
                ws = await websockets.connect(
                    url, subprotocols=[Subprotocol("graphql-transport-ws")],
                    compression=compression, open_timeout=60, ping_interval=None,
                )
        except Exception as exc:
            self.problems.append(f"{type(exc).__name__}: {exc}")
            return
        try:
            assert ws.response is not None  # the handshake's, once connected
            self.deflate = "permessage-deflate" in ws.response.headers.get(
                "Sec-WebSocket-Extensions", ""
            )
            init = {"Authorization": f"Bearer {self.token}"}
            await ws.send(orjson.dumps({"type": "connection_init", "payload": init}).decode())
            ack = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"no connection_ack: {ack}")
            await ws.send(orjson.dumps({
                "id": "1", "type": "subscribe",
                "payload": {"query": SUBSCRIPTION, "variables": {"id": gid}},
            }).decode())
            opened()
            reader = asyncio.ensure_future(self._read(ws))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait([reader, stopped], return_when=asyncio.FIRST_COMPLETED)
            for task in (reader, stopped):
                task.cancel()
        except Exception as exc:
            self.problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            await ws.close()

    async def _read(self, ws: Any) -> None:
        async for raw in ws:
            now = time.perf_counter()
            message = orjson.loads(raw)
            kind = message.get("type")
            if kind == "next":
                payload = message["payload"]
                added = (payload.get("data") or {}).get("messageAdded")
                if payload.get("errors") or not added:
                    self.problems.append(f"next without data: {payload}")
                    continue
                self.receipts.append((int(added["text"].rsplit(" ", 1)[1]), now))
            elif kind == "ping":
                await ws.send('{"type": "pong"}')
            else:
                self.problems.append(f"{kind}: {message.get('payload')}")
        self.problems.append(f"closed by the server: {ws.close_code} {ws.close_reason}")


async def until(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def receipts(clients: list[Client]) -> int:
    return sum(len(c.receipts) for c in clients)


async def subscribers(args: argparse.Namespace, pop: Population, server: Server,
                      stop: asyncio.Event) -> tuple[list[Client], list[asyncio.Task[None]], float]:
    """Every socket opened and subscribed (or failed), ``OPENING`` at a time; the seconds that
    took. The tasks read until ``stop``."""
    from gateway.auth import issue_token
    from gateway.settings import Settings
    from resolvers.ids import to_global_id

    settings = Settings(jwt_secret=JWT_SECRET)
    tokens: dict[uuid.UUID, str] = {}
    clients = []
    for c, viewer in pop.sockets:
        if viewer not in tokens:
            tokens[viewer] = issue_token(settings, str(viewer), ttl_s=86_400)
        clients.append(Client(c, tokens[viewer]))
    url = f"ws://127.0.0.1:{server.port}/graphql"
    opening = asyncio.Semaphore(OPENING)
    compression = None if args.no_deflate else "deflate"
    subscribed = 0

    def opened() -> None:
        nonlocal subscribed
        subscribed += 1

    began = time.perf_counter()
    tasks = [
        asyncio.ensure_future(client.run(
            url, to_global_id("V2Conversation", pop.conversations[client.conversation]), opening,
            compression, opened, stop,
        ))
        for client in clients
    ]
    await until(lambda: subscribed + sum(1 for t in tasks if t.done()) == len(tasks), 300)
    return clients, tasks, time.perf_counter() - began
