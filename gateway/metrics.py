"""Prometheus metrics of one app (DESIGN §11): requests by operation type and outcome, their
duration, SQL statements, connections in use, and — what an operator plans v1's sunset with —
conversations and messages read and messages written, per store generation; with read
replicas, the transactions each server took and each replica's state (DESIGN §6); the
subscriptions, their events and the LISTEN connection (DESIGN §10).

Each app has its own registry (tests build many apps in one process). With several uvicorn
workers each serves its own figures; scrape them per worker, or run one worker per container.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import in_use
from gateway.db.replicas import replicas_of
from gateway.realtime import Hub

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(
        self, engine: Callable[[], AsyncEngine | None], hub: Hub | None = None
    ) -> None:
        """``engine``: the app's engine once it has one (the lifespan may create it later);
        ``hub``: the app's subscriptions."""
        self.registry = CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.requests = Counter(
            "mwplu_graphql_requests", "GraphQL requests answered",
            ["operation_type", "outcome"], registry=self.registry,
        )
        self.duration = Histogram(
            "mwplu_graphql_request_duration_seconds", "Time to answer a GraphQL request",
            ["operation_type"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.statements = Counter(
            "mwplu_db_statements", "SQL statements sent (with the per-transaction set-up)",
            registry=self.registry,
        )
        self.pool_in_use = Gauge(
            "mwplu_db_pool_in_use", "Database connections in use (not kept idle)",
            registry=self.registry,
        )

        def connections_in_use() -> float:
            current = engine()
            return float(in_use(current)) if current is not None else 0.0

        self.pool_in_use.set_function(connections_in_use)
        self.conversations_read = Counter(
            "mwplu_conversations_read", "Conversations read, per store", ["source"],
            registry=self.registry,
        )
        self.messages_read = Counter(
            "mwplu_messages_read", "Messages read, per store", ["source"], registry=self.registry
        )
        self.messages_written = Counter(
            "mwplu_messages_written", "Messages written (committed), per store", ["source"],
            registry=self.registry,
        )
        self.registry.register(ReplicaCollector(engine))
        if hub is not None:
            self.registry.register(RealtimeCollector(hub))

    def request(
        self, operation_type: str, outcome: str, seconds: float, statements: int,
        reads: Tally[tuple[str, str]], writes: Tally[tuple[str, str]],
    ) -> None:
        """One answered request; ``writes`` only when its transaction committed."""
        self.labelled(self.requests, operation_type, outcome).inc()
        self.labelled(self.duration, operation_type).observe(seconds)
        if statements:
            self.statements.inc(statements)
        for (kind, source), count in reads.items():
            counter = self.conversations_read if kind == "conversations" else self.messages_read
            self.labelled(counter, source).inc(count)
        for (_, source), count in writes.items():
            self.labelled(self.messages_written, source).inc(count)

    def labelled(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, remembered: a child is the same object for its values
        (nothing here removes one), and ``labels`` checks and locks on every call."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ReplicaCollector(Collector):
    """Read replicas, when configured: request transactions per server (``primary`` or a
    replica's ``host:port``), and whether each replica serves queries and its lag, as this
    worker last checked."""

    def __init__(self, engine: Callable[[], AsyncEngine | None]) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        current = self.engine()
        replicas = replicas_of(current) if current is not None else None
        if replicas is None:
            return
        transactions = CounterMetricFamily(
            "mwplu_db_transactions", "Request transactions opened, per database server",
            labels=["target"],
        )
        for target, count in sorted(replicas.served.items()):
            transactions.add_metric([target], count)
        up = GaugeMetricFamily(
            "mwplu_db_replica_up",
            "1 while the replica serves queries (reachable, replaying, within the lag bound)",
            labels=["replica"],
        )
        lag = GaugeMetricFamily(
            "mwplu_db_replica_lag_seconds", "The replica's lag when last checked",
            labels=["replica"],
        )
        now = time.monotonic()
        for replica in replicas.replicas:
            up.add_metric([replica.name], float(replica.usable(now, replicas.settings)))
            if replica.lag_s is not None:
                lag.add_metric([replica.name], replica.lag_s)
        yield from (transactions, up, lag)


class RealtimeCollector(Collector):
    """This worker's subscriptions (DESIGN §10)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        subscriptions = GaugeMetricFamily(
            "mwplu_subscriptions", "Open subscriptions, per field", labels=["field"]
        )
        subscriptions.add_metric(["messageAdded"], sum(len(s) for s in hub.messages.values()))
        subscriptions.add_metric(["conversationActivity"], len(hub.activity))
        yield subscriptions
        yield GaugeMetricFamily(
            "mwplu_subscription_connections", "Open subscription connections",
            value=sum(hub.connections.values()),
        )
        yield CounterMetricFamily(
            "mwplu_subscription_events", "Events handed to subscribers (before their re-read)",
            value=hub.delivered,
        )
        yield CounterMetricFamily(
            "mwplu_subscription_slow_consumers",
            "Subscribers disconnected for falling too far behind (4429)",
            value=hub.slow_consumers,
        )
        sources = hub.sources
        yield GaugeMetricFamily(
            "mwplu_realtime_listening", "1 while this worker LISTENs for events",
            value=float(sources is not None and sources.listening.is_set()),
        )
        yield CounterMetricFamily(
            "mwplu_realtime_reconnections", "Times the LISTEN connection was opened again",
            value=sources.reconnections if sources is not None else 0,
        )
