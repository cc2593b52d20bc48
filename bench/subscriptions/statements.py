"""The gateway's SQL, counted by PostgreSQL: ``log_statement = 'all'`` during a short
calibration after the timed run, the lines logged for ``authenticator`` counted (not during
the timed run: logging every statement would inflate the CPU figures)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.subscriptions.clients import Client, receipts, until
from bench.subscriptions.deliveries import Tally, check, expected
from bench.subscriptions.messages import Sent, drain, insert
from bench.subscriptions.population import Population

# log_line_prefix during the calibration: the backend's login role, then the message.
LOGGED = re.compile(r"\] (\S*)@\S* LOG:  (?:statement|execute [^:]*): (.*)$")


@dataclass
class Statements:
    """What ``authenticator`` sent during the calibration, as PostgreSQL logged it: ``sent``
    protocol messages (round trips), each holding one SQL statement or, for the gateway's
    ``BEGIN; SET LOCAL …``, two."""

    messages: int = 0  # INSERTed during the calibration
    deliveries: int = 0
    sent: int = 0
    begins: int = 0
    setups: int = 0  # the per-transaction role and claims
    ends: int = 0  # COMMIT, ROLLBACK
    reads: int = 0  # everything else

    @property
    def statements(self) -> int:
        return self.begins + self.setups + self.ends + self.reads


def read_log(log: Path, start: int, end: int | None) -> list[str]:
    with log.open("rb") as handle:
        handle.seek(start)
        chunk = handle.read() if end is None else handle.read(end - start)
    return chunk.decode(errors="replace").splitlines()


def count_logged(lines: list[str]) -> Statements:
    from gateway.db import SETUP_MARKER

    counted = Statements()
    for line in lines:
        match = LOGGED.search(line)
        if not match or match.group(1) != "authenticator":
            continue
        text = match.group(2).strip()
        counted.sent += 1
        upper = text.upper()
        begin = upper.startswith(("BEGIN", "START TRANSACTION"))
        setup = SETUP_MARKER in text
        counted.begins += begin
        counted.setups += setup
        if upper.startswith(("COMMIT", "ROLLBACK", "END")):
            counted.ends += 1
        elif not begin and not setup:
            counted.reads += 1
    return counted


async def calibrate(conn: asyncpg.Connection, log: Path, pop: Population,
                    clients: list[Client], sent: Sent, rate: float) -> tuple[Statements, Tally]:
    """One message per conversation with every statement logged; the lines of
    ``authenticator`` (the gateway's login) counted between the log's sizes before and after."""
    await conn.execute("ALTER SYSTEM SET log_statement = 'all'")
    await conn.execute("ALTER SYSTEM SET log_line_prefix = '%m [%p] %u@%d '")
    mark = await asyncio.to_thread(lambda: log.stat().st_size)
    await conn.execute("SELECT pg_reload_conf()")
    # The postmaster logs the change, then signals the backends: each applies it before its
    # next statement.
    changed = 'parameter "log_statement" changed to "all"'
    if not await until(lambda: changed in "\n".join(read_log(log, mark, None)), 10):
        raise RuntimeError(f"log_statement = 'all' not applied (see {log})")
    await asyncio.sleep(0.1)
    start = await asyncio.to_thread(lambda: log.stat().st_size)
    base = receipts(clients)
    await insert(conn, pop, sent, "calibration", list(range(len(pop.conversations))), rate)
    numbers = sent.of("calibration")
    await drain(clients, numbers, base, expected(clients, numbers))
    await asyncio.sleep(0.2)  # a margin: the backends write the log, not this process
    end = await asyncio.to_thread(lambda: log.stat().st_size)
    await conn.execute("ALTER SYSTEM RESET log_statement")
    await conn.execute("ALTER SYSTEM RESET log_line_prefix")
    await conn.execute("SELECT pg_reload_conf()")
    statements = count_logged(await asyncio.to_thread(read_log, log, start, end))
    tally = check(clients, numbers)
    statements.messages, statements.deliveries = len(numbers), tally.received
    return statements, tally
