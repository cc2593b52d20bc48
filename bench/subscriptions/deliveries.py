"""The deliveries checked against the messages sent: each socket must receive each message of
its conversation once, in order, and nothing else; the latencies of those it did."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from bench.subscriptions.clients import Client


@dataclass
class Tally:
    expected: int = 0
    received: int = 0
    missing: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    foreign: int = 0  # messages of another conversation
    latencies: list[float] = field(default_factory=list)  # seconds


def expected(clients: list[Client], numbers: dict[int, tuple[str, int, float]]) -> int:
    per_conversation: dict[int, int] = {}
    for _, c, _ in numbers.values():
        per_conversation[c] = per_conversation.get(c, 0) + 1
    return sum(per_conversation.get(client.conversation, 0) for client in clients)


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
