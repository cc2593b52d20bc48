"""One measured run against a started gateway: the sockets opened and warmed up, the timed
INSERTs, their deliveries checked, CPU and RSS from ``/proc``, then the statement calibration."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.graph.data import Database, connect_args
from bench.graph.procfs import CLK_TCK, cpu_delta, cpu_ticks, descendants, status_kb
from bench.graph.servers import Server
from bench.subscriptions.clients import receipts, subscribers
from bench.subscriptions.deliveries import Tally, check, expected
from bench.subscriptions.messages import Sent, drain, insert, warm_up
from bench.subscriptions.population import populate
from bench.subscriptions.statements import Statements, calibrate


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
