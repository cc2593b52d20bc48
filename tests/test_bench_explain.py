"""``python -m bench.graph --explain``: the plan of every read statement a request sends,
those the read engine sends to the driver directly included, explained as the request's
viewer (an explain as the login role is refused by the tables' grants)."""

from __future__ import annotations

import re
import uuid

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.graph.statements import explain_workloads
from bench.graph.workloads import Request, Workload, graphql_body
from gateway.db import StatementCounter
from gateway.settings import Settings
from tests.conftest import bearer
from tests.test_statement_count import REFERENCE, arrange


@pytest.fixture
async def admin(owner: asyncpg.Connection) -> uuid.UUID:
    return await arrange(owner)


async def test_every_read_statement_of_a_request_is_explained_as_its_viewer(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    statements: StatementCounter,
    admin: uuid.UUID,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given the reference query (its reads go to the driver directly) and how many reads it
    # sends
    body = graphql_body(REFERENCE, {"first": 20})
    headers = {
        "authorization": bearer(str(admin))["Authorization"],
        "content-type": "application/json",
    }
    response = await client.post("/graphql", content=body, headers=headers)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    reads = statements.reads
    assert reads >= 5

    # when the bench explains it
    workload = Workload("R2", "reference", {"gateway": [Request("/graphql", body)]})
    await explain_workloads([workload], client, headers, engine, settings, None)

    # then each of those reads has its plan and execution time
    out = capsys.readouterr().out
    assert f"EXPLAIN R2: {reads} read statement(s)" in out, out
    assert len(re.findall(r"Execution Time: [\d.]+ ms", out)) == reads, out
    assert "unnest" in out  # a page of many parents, sent with its key array
