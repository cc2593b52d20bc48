"""The figures of a run (``--json`` writes them) and the report printed from them."""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

from bench.subscriptions.deliveries import percentile
from bench.subscriptions.measure import Result
from bench.subscriptions.statements import Statements


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
