"""The results: one table per workload, its servers side by side."""

from __future__ import annotations

import argparse

from bench.graph.measure import Point
from bench.graph.workloads import Workload


def print_table(
    workload: Workload, points: list[Point], base: str | None, servers: list[str] | None = None
) -> None:
    print(f"\n{workload.key}  {workload.title}")
    header = (
        f"  {'server':<13}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}  "
        f"{'stmts/req':<26}{'CPU ms/req':>11}{'PG ms/req':>10}{'RSS MB':>8}{'peak MB':>8}"
        f"{'growth':>8}"
    )
    ratio_title = f"  ÷ {base}" if base else ""
    print(header + ratio_title)
    reference = next((p for p in points if p.server == base), None)
    for p in points:
        w = p.wrk
        ratio = ""
        if reference is not None and reference.wrk.rps:
            ratio = f"{w.rps / reference.wrk.rps:7.2f}x"
        # n/a: the database server's processes are not visible here (another host)
        pg_cpu = "n/a" if p.pg_cpu_ms is None else f"{p.pg_cpu_ms:.2f}"
        print(
            f"  {p.server:<13}{w.rps:8.1f}{w.p50_ms:9.1f}{w.p99_ms:9.1f}{w.errors:8d}  "
            f"{p.statements:<26}{p.cpu_ms:11.2f}{pg_cpu:>10}{p.rss_mb:8.0f}"
            f"{p.hwm_mb:8.0f}{p.rss_growth_mb:+8.1f}{ratio:>10}"
        )
        if len(p.rounds) > 1:
            each = ", ".join(f"{rps:.1f}" for rps in p.rounds)
            print(f"      req/s of each round, in order: {each} (the median one above)")
        if len(p.rss_trace) == 10 and w.seconds >= 60:
            trace = " ".join(f"{mb:.0f}" for mb in p.rss_trace)
            print(f"      RSS MB at each tenth of the run: {trace}")
        if w.errors:
            print(
                f"      errors: {w.non_2xx} non-2xx, {w.socket_errors} socket, "
                f"{w.gql_errors} GraphQL"
            )
    for name, why in workload.absent.items():
        if servers is None or name in servers:  # a server of the run that cannot answer it
            print(f"  {name:<13}{'—':>8}{'—':>9}{'—':>9}{'—':>8}  {why}")


# The write of issue 14's postMessage: its target, reported (never asserted).
R8_TARGET_RATIO = 0.5  # gateway req/s ÷ the raw limit's
R8_TARGET_P99_MS = 50.0


def print_r8_target(points: list[Point], connections: int) -> None:
    gateway = next((p for p in points if p.server == "gateway"), None)
    raw = next((p for p in points if p.server == "raw limit"), None)
    if gateway is None or raw is None or not raw.wrk.rps:
        return
    ratio = gateway.wrk.rps / raw.wrk.rps
    p99 = gateway.wrk.p99_ms
    verdict = "met" if ratio >= R8_TARGET_RATIO and p99 < R8_TARGET_P99_MS else "not met"
    other = "" if connections == 16 else f"; this run c={connections}"
    print(
        f"  issue target: gateway ÷ raw limit {ratio:.2f}x (≥ {R8_TARGET_RATIO:g}x), gateway "
        f"p99 {p99:.1f} ms (< {R8_TARGET_P99_MS:g} ms at c=16{other}): {verdict} (reported, "
        f"not asserted)"
    )


def print_results(
    args: argparse.Namespace,
    results: list[tuple[Workload, list[Point]]],
    base: str,
    r4_ratio: tuple[float, float, int] | None,
    pg_visible: bool = True,
    servers: list[str] | None = None,
    notes: dict[str, list[str]] | None = None,
) -> None:
    """The tables; ``servers``: those of the run (a workload's absent ones get a "—" row);
    ``notes``: lines printed under a workload's table (its checks)."""
    pg = (
        "PG: Postgres' processes"
        if pg_visible
        else "PG: n/a, the database server's processes are not visible from this machine"
    )
    rounds = (
        f", read workloads {args.rounds} rounds per server, the servers alternating: each "
        f"server's median round"
        if args.rounds > 1
        else ""
    )
    print(
        f"\nResults: wrk, {args.connections} connections, {args.duration:g}s per point after "
        f"a warm-up{rounds}; CPU = utime+stime of the server's processes ({pg}) per "
        f"request; RSS = the largest worker after the run, growth = its RSS at the end minus "
        f"a tenth into the run; ratios are req/s"
    )
    for w, points in results:
        names = [p.server for p in points]
        ratio_base = base if base in names else ("raw limit" if "raw limit" in names else None)
        print_table(w, points, ratio_base, servers)
        if w.key == "R8":
            print_r8_target(points, args.connections)
        for line in (notes or {}).get(w.key, []):
            print(f"  {line}")
        if w.key == "R1" and "postgraphile" in names and "raw limit" in names:
            pgl = next(p for p in points if p.server == "postgraphile").wrk.rps
            raw = next(p for p in points if p.server == "raw limit").wrk.rps
            gw = next(p for p in points if p.server == "gateway").wrk.rps
            print(
                f"  gateway ÷ raw limit: {gw / raw:.2f}x; "
                f"raw limit ÷ postgraphile: {raw / pgl:.2f}x"
            )
        if w.key == "R4" and r4_ratio is not None:
            gateway_best, sql_best, buckets = r4_ratio
            print(
                f"  single request, best of 5: gateway {gateway_best * 1000:.1f} ms (HTTP, "
                f"{buckets} buckets) vs bare SQL GROUP BY {sql_best * 1000:.1f} ms (asyncpg) = "
                f"{gateway_best / sql_best:.2f}x"
            )
