"""``python -m bench.graph --rounds N``: the servers alternate within a workload, and each
server's median round is the one reported."""

from __future__ import annotations

import pytest

from bench.graph.cli import parse_args
from bench.graph.measure import Point, WrkResult, median_round, round_order
from bench.graph.workloads import build_workloads
from bench.graph_data import Scale


def point(rps: float, p99_ms: float, cpu_ms: float) -> Point:
    wrk = WrkResult(
        requests=int(rps * 10),
        seconds=10.0,
        p50_ms=1.0,
        p90_ms=2.0,
        p99_ms=p99_ms,
        max_ms=p99_ms,
        non_2xx=0,
        socket_errors=0,
        gql_errors=0,
    )
    return Point(server="gateway", wrk=wrk, cpu_ms=cpu_ms, pg_cpu_ms=0.5, rss_mb=90, hwm_mb=91)


def test_each_round_starts_one_server_later() -> None:
    servers = ["gateway", "raw limit", "postgraphile"]
    orders = [round_order(servers, r) for r in range(4)]
    assert orders == [
        ["gateway", "raw limit", "postgraphile"],
        ["raw limit", "postgraphile", "gateway"],
        ["postgraphile", "gateway", "raw limit"],
        ["gateway", "raw limit", "postgraphile"],
    ]
    # over as many rounds as servers, each server runs once in each position
    for position in range(3):
        assert sorted(order[position] for order in orders[:3]) == sorted(servers)
    assert round_order([], 2) == []


def test_the_median_round_is_reported_whole_with_every_rounds_rate() -> None:
    rounds = [point(300.0, 40.0, 2.0), point(200.0, 90.0, 3.0), point(250.0, 60.0, 2.5)]
    chosen = median_round(rounds)
    # the round of median req/s, its latency and CPU its own (not medians of each figure)
    assert (chosen.wrk.rps, chosen.wrk.p99_ms, chosen.cpu_ms) == (250.0, 60.0, 2.5)
    assert chosen.rounds == [300.0, 200.0, 250.0]  # in the order they ran
    assert rounds[2].rounds == []  # the measured rounds are left as they were


def test_an_even_count_reports_the_lower_middle_round() -> None:
    rounds = [point(400.0, 30.0, 1.0), point(100.0, 99.0, 4.0)]
    assert median_round(rounds).wrk.rps == 100.0


def test_rounds_default_to_one_and_refuse_zero() -> None:
    assert parse_args([]).rounds == 1
    assert parse_args(["--rounds", "3"]).rounds == 3
    with pytest.raises(SystemExit) as refused:
        parse_args(["--rounds", "0"])
    assert refused.value.code == 2


def test_the_writes_are_flagged_to_run_once() -> None:
    """The writes carry ``writes_data``, which the run's loop measures once: a second round of
    R7 would migrate conversations already migrated (other work)."""
    workloads = build_workloads(Scale(conversations=60, messages=2, events=10), False, str)
    writes = {w.key for w in workloads if w.writes_data}
    assert writes == {"R7", "R8", "R8-hot"}
