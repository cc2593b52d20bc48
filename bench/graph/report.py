"""The results: one table per workload, its servers side by side."""

from __future__ import annotations

import argparse

from bench.graph.measure import Point
from bench.graph.workloads import Workload


def print_table(workload: Workload, points: list[Point], base: str | None) -> None:
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
        if len(p.rss_trace) == 10 and w.seconds >= 60:
            trace = " ".join(f"{mb:.0f}" for mb in p.rss_trace)
            print(f"      RSS MB at each tenth of the run: {trace}")
        if w.errors:
            print(
                f"      errors: {w.non_2xx} non-2xx, {w.socket_errors} socket, "
                f"{w.gql_errors} GraphQL"
            )


def print_results(
    args: argparse.Namespace,
    results: list[tuple[Workload, list[Point]]],
    base: str,
    r4_ratio: tuple[float, float, int] | None,
    pg_visible: bool = True,
) -> None:
    pg = (
        "PG: Postgres' processes"
        if pg_visible
        else "PG: n/a, the database server's processes are not visible from this machine"
    )
    print(
        f"\nResults: wrk, {args.connections} connections, {args.duration:g}s per point after "
        f"a warm-up; CPU = utime+stime of the server's processes ({pg}) per "
        f"request; RSS = the largest worker after the run, growth = its RSS at the end minus "
        f"a tenth into the run; ratios are req/s"
    )
    for w, points in results:
        names = [p.server for p in points]
        ratio_base = base if base in names else ("raw limit" if "raw limit" in names else None)
        print_table(w, points, ratio_base)
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
