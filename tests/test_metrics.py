"""/metrics by store generation and one JSON log line per request (DESIGN §11)."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.http.app import create_app
from gateway.settings import Settings
from tests.conftest import JWT_SECRET, bearer
from tests.factories import make_user, make_v1_conversation, make_v2_conversation
from tests.graphql import gid

READ = """{ conversations(first: 10, filter: {includeMigrated: true}) { edges { node {
  source messages(first: 5) { edges { node { text } } } } } } }"""
POST = """mutation ($input: PostMessageInput!) { postMessage(input: $input) { message { id } } }"""


@pytest.fixture
async def metered(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(jwt_secret=JWT_SECRET, env="test", metrics=True)
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        yield client


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``text`` (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    found = re.search("^" + pattern + "$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_reads_and_writes_are_counted_per_store(
    metered: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    user = await make_user(owner)
    await make_v1_conversation(owner, user, messages=3)
    v2 = await make_v2_conversation(owner, user, messages=2)
    headers = bearer(str(user))
    read = await metered.post("/graphql", json={"query": READ}, headers=headers)
    assert read.status_code == 200
    posted = await metered.post("/graphql", headers=headers, json={
        "query": POST, "variables": {"input": {"conversationId": gid("V2Conversation", v2),
                                               "text": "Et la hauteur ?"}}})
    assert "errors" not in posted.json(), posted.json()
    refused = await metered.post("/graphql", headers=headers, json={
        "query": POST, "variables": {"input": {"conversationId": gid("V2Conversation", v2),
                                               "text": "  "}}})
    assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"

    response = await metered.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert sample(text, "mwplu_conversations_read_total", source="v1") == 1
    assert sample(text, "mwplu_conversations_read_total", source="v2") == 1
    assert sample(text, "mwplu_messages_read_total", source="v1") == 3
    assert sample(text, "mwplu_messages_read_total", source="v2") == 2 + 1  # + the payload
    assert sample(text, "mwplu_messages_written_total", source="v2") == 1  # not the refused
    assert sample(text, "mwplu_messages_written_total", source="v1") == 0
    assert sample(text, "mwplu_graphql_requests_total", operation_type="query", outcome="ok") == 1
    assert sample(text, "mwplu_graphql_requests_total", operation_type="mutation",
                  outcome="ok") == 1
    assert sample(text, "mwplu_graphql_requests_total", operation_type="mutation",
                  outcome="BAD_USER_INPUT") == 1
    assert sample(text, "mwplu_graphql_request_duration_seconds_count",
                  operation_type="query") == 1
    # the read: set-up, keys, the two conversation types (one row each: one statement), two
    # message pages; the post: set-up, lock, insert (with its event), its payload
    assert sample(text, "mwplu_db_statements_total") == 5 + 4
    assert "mwplu_db_pool_in_use " in text


async def test_a_page_reads_the_row_past_it_only_for_has_next_page(
    metered: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    """The row past a page only says whether more follow: a page that is not asked for
    ``hasNextPage`` does not read it (the rows read are counted per store)."""
    user = await make_user(owner)
    await make_v2_conversation(owner, user, messages=3)
    headers = bearer(str(user))
    pages = {
        "": None,
        "pageInfo { endCursor }": None,
        "pageInfo { hasNextPage }": True,
    }
    read = 0.0
    for info, more in pages.items():
        query = f"""{{ conversations(first: 1) {{ edges {{ node {{
          messages(first: 2) {{ edges {{ node {{ text }} }} {info} }} }} }} }} }}"""
        response = await metered.post("/graphql", json={"query": query}, headers=headers)
        (edge,) = response.json()["data"]["conversations"]["edges"]
        messages = edge["node"]["messages"]
        assert len(messages["edges"]) == 2
        assert messages.get("pageInfo", {}).get("hasNextPage") == more
        text = (await metered.get("/metrics")).text
        now = sample(text, "mwplu_messages_read_total", source="v2")
        assert now - read == (3 if more else 2), info
        read = now


async def test_metrics_are_off_unless_asked_for(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 404
    assert Settings.from_env({"GATEWAY_ENV": "production", "DATABASE_URL": "postgresql://x/y",
                              "JWT_SECRET": "s" * 40}).metrics is True
    assert Settings.from_env({}).metrics is False


async def test_one_json_log_line_per_request_without_the_token(
    client: httpx.AsyncClient, owner: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    user = await make_user(owner)
    headers = bearer(str(user))
    caplog.set_level(logging.INFO, logger="gateway.requests")
    await client.post("/graphql", json={"query": "query Mine { viewer { id } }"},
                      headers={**headers, "x-request-id": "req-7"})
    await client.post("/graphql", json={"query": "{ nope }"}, headers=headers)
    await client.post("/graphql", json={"query": "{ viewer { id } }"},
                      headers={"Authorization": "Bearer not-a-token"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.requests"]
    assert len(lines) == 3
    first, refused, unauthenticated = lines
    assert first["request_id"] == "req-7"
    assert {k: first[k] for k in ("operation_name", "operation_type", "status", "outcome",
                                  "role", "statements")} == {
        "operation_name": "Mine", "operation_type": "query", "status": 200, "outcome": "ok",
        "role": "authenticated", "statements": 2,
    }
    assert first["duration_ms"] > 0
    assert first["database"] == "primary"  # no replica configured
    assert refused["outcome"] == "BAD_USER_INPUT" and refused["statements"] == 0
    assert refused["database"] is None  # no transaction
    assert unauthenticated["status"] == 401 and unauthenticated["outcome"] == "UNAUTHENTICATED"
    token = headers["Authorization"].split()[1]
    assert all(token not in r.getMessage() for r in caplog.records)
    assert str(uuid.UUID(int=0)) not in caplog.text


def test_the_grafana_dashboard_plots_only_metrics_the_gateway_serves() -> None:
    from pathlib import Path

    from gateway.metrics import Metrics

    dashboard = json.loads(
        (Path(__file__).resolve().parent.parent / "docs" / "grafana-dashboard.json").read_text()
    )
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"],
                "gauge": [""]}
    served = {
        family.name + suffix
        for family in Metrics(lambda: None).registry.collect()
        for suffix in suffixes.get(family.type, [""])
    }
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    named = {name for expr in exprs for name in re.findall(r"\bmwplu_\w+", expr)}
    assert named and named <= served, named - served
    assert {"mwplu_messages_written_total", "mwplu_conversations_read_total"} <= named
