"""OpenTelemetry: a span per GraphQL request and one per SQL statement, the statements' text
elided (DESIGN §11)."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import bearer
from tests.factories import make_user, make_v2_conversation

QUERY = "query Mine { conversations(first: 5) { edges { node { source } } } }"


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process: the API refuses a second one
    return exporter


async def test_a_request_span_with_one_span_per_statement(
    spans: InMemorySpanExporter, client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    user = await make_user(owner)
    await make_v2_conversation(owner, user)
    spans.clear()
    token = bearer(str(user))
    response = await client.post("/graphql", json={"query": QUERY}, headers=token)
    assert response.status_code == 200
    finished = spans.get_finished_spans()
    (request,) = [s for s in finished if s.name == "graphql request"]
    statements = [s for s in finished if s.name.startswith("sql ")]
    assert request.attributes is not None
    assert request.attributes["graphql.operation.name"] == "Mine"
    assert request.attributes["graphql.operation.type"] == "query"
    assert request.attributes["mwplu.outcome"] == "ok"
    assert request.attributes["mwplu.source.v2.conversations_read"] == 1
    assert len(statements) == request.attributes["mwplu.statements"] - 1  # the set-up has none
    assert all(s.parent is not None and s.parent.span_id == request.context.span_id
               for s in statements)
    for span in statements:
        assert span.attributes is not None and span.attributes["db.operation"] == "SELECT"
        assert "db.statement" not in span.attributes
    assert token["Authorization"].split()[1] not in str([s.to_json() for s in finished])
