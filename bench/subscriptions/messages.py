"""The v2 messages INSERTed by SQL (the database owner's connection, one transaction each), and
the waits for their deliveries."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench.subscriptions.clients import Client, receipts, until
from bench.subscriptions.population import Population

INSERT = (
    "INSERT INTO v2_messages (conversation_id, user_id, role, message) "
    "VALUES ($1, $2, 'user', $3)"
)
DRAIN_S = 15.0  # how long deliveries may trail the last INSERT


@dataclass
class Sent:
    """The messages inserted: number -> (phase, conversation index, COMMIT time)."""

    messages: dict[int, tuple[str, int, float]] = field(default_factory=dict)

    def of(self, phase: str) -> dict[int, tuple[str, int, float]]:
        return {n: m for n, m in self.messages.items() if m[0] == phase}


async def insert(conn: asyncpg.Connection, pop: Population, sent: Sent, phase: str,
                 targets: list[int], rate: float) -> float:
    """INSERT one message into each of ``targets`` (conversation indexes), ``rate`` a second,
    each in its own transaction; returns how far the last one fell behind its schedule (s)."""
    began, late = time.perf_counter(), 0.0
    for i, c in enumerate(targets):
        due = began + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        number = len(sent.messages)
        await conn.execute(INSERT, pop.conversations[c], pop.owners[c], f"{phase} {number}")
        sent.messages[number] = (phase, c, time.perf_counter())
        late = time.perf_counter() - due
    return late


async def drain(clients: list[Client], numbers: dict[int, Any], base: int, want: int) -> None:
    """Until the ``want`` deliveries of ``numbers`` arrived (or ``DRAIN_S`` passed); ``base``:
    every socket's receipts before they were sent (a cheap first test)."""

    def arrived() -> bool:
        if receipts(clients) < base + want:
            return False
        return sum(1 for c in clients for n, _ in c.receipts if n in numbers) >= want

    await until(arrived, DRAIN_S)


async def warm_up(conn: asyncpg.Connection, pop: Population, clients: list[Client],
                  sent: Sent) -> int:
    """Warm-up messages to the conversations with a socket that has received none yet, until
    each has received one: every subscription is in place before the timed run."""
    for rounds in range(1, 121):
        cold = sorted({c.conversation for c in clients if not c.receipts and not c.problems})
        if not cold:
            return rounds - 1
        await insert(conn, pop, sent, "warm-up", cold, rate=1000)
        await until(lambda: all(c.receipts or c.problems for c in clients), 0.25)
    raise RuntimeError("some sockets received no warm-up message in 30 s")
