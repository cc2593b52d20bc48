"""Fuzzing (issue 5): hypothesis-graphql generates valid queries from the checked-in
``schema.graphql``; each runs through the app as a signed-in user over a small fixture. No
answer may be a 5xx, carry an ``INTERNAL`` error, or contain SQL or traceback text.

Hypothesis generates the documents up front (its ``@given`` cannot drive the async app from
inside the test's running event loop); the test body then sends them all on one database.
Argument values are steered towards the fixture: ``id``-like arguments get the global ids of
real rows (or a malformed one), and most ``first`` values land in 1..100, so the resolvers
behind the arguments run rather than refuse at once.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import time
import uuid
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import graphql
import httpx
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import queries

from resolvers.ids import to_global_id
from tests.conftest import bearer
from tests.test_isolation import World, everyone, private_ids, world  # noqa: F401

SDL = (Path(__file__).resolve().parent.parent / "schema.graphql").read_text()
EXAMPLES = 2000
CHUNKS = 8
ID_ARGUMENTS = {
    "id",
    "ids",
    "ownerId",
    "projectId",
    "documentId",
    "userId",
    "cityId",
    "zoneId",
    "conversationId",
}
CODES = {"BAD_USER_INPUT", "UNAUTHENTICATED", "NOT_FOUND", "FORBIDDEN"}
LEAKS = re.compile(
    r"Traceback|File \"|site-packages|/work/|sqlalchemy|asyncpg|\bSELECT\b|\bFROM\s+[a-z_]+\b|"
    # (a JSON value "v2_conversations" is the feature flag's key, not a leak of the table)
    r"\bWHERE\b|\bJOIN\b|chat_conversations|chat_messages|(?<!\":\")v2_conversations|v2_messages|"
    r"v2_projects|migration_tracking|RecursionError|Exception|Error:"
)

DATETIMES = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: graphql.StringValueNode(value=d.isoformat()))
CUSTOM_SCALARS = {
    "DateTime": DATETIMES,
    "Date": DATETIMES,
    "UUID": st.uuids().map(lambda u: graphql.StringValueNode(value=str(u))),
    "Decimal": st.decimals(allow_nan=False, allow_infinity=False, places=2).map(
        lambda d: graphql.StringValueNode(value=str(d))
    ),
    "JSON": st.just(graphql.StringValueNode(value="{}")),
}


def steer(document: graphql.DocumentNode, global_ids: list[str]) -> str:
    """``document`` printed, with id arguments pointed at real rows and ``first`` mostly in
    range (deterministically: the same generated value always maps to the same id)."""
    choices = [*global_ids, "not-a-global-id", to_global_id("City", uuid.UUID(int=1))]

    def an_id(node: graphql.ValueNode) -> graphql.ValueNode:
        if isinstance(node, graphql.ListValueNode):
            return graphql.ListValueNode(values=tuple(an_id(v) for v in node.values))
        if isinstance(node, (graphql.StringValueNode, graphql.IntValueNode)):
            pick = zlib.crc32(str(node.value).encode()) % len(choices)
            return graphql.StringValueNode(value=choices[pick])
        return node

    def a_first(node: graphql.ValueNode) -> graphql.ValueNode:
        if isinstance(node, graphql.IntValueNode):
            value = int(node.value)
            if not 1 <= value <= 100:
                value = abs(value) % 102  # 0 and 101 stay out of range now and then
            return graphql.IntValueNode(value=str(value))
        return node

    class Steer(graphql.Visitor):
        def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> Any:
            if node.name.value in ID_ARGUMENTS:
                return graphql.ArgumentNode(name=node.name, value=an_id(node.value))
            if node.name.value == "first":
                return graphql.ArgumentNode(name=node.name, value=a_first(node.value))
            return None

        def enter_object_field(self, node: graphql.ObjectFieldNode, *_: Any) -> Any:
            if node.name.value in ID_ARGUMENTS:
                return graphql.ObjectFieldNode(name=node.name, value=an_id(node.value))
            return None

    return graphql.print_ast(graphql.visit(document, Steer()))


def generate(seed_value: int, count: int, global_ids: list[str]) -> list[str]:
    """``count`` generated queries, steered (runs in a worker process: hypothesis-graphql
    takes some 30 ms of CPU per document, so two processes share the work)."""
    documents: list[graphql.DocumentNode] = []
    strategy = queries(
        SDL, custom_scalars=CUSTOM_SCALARS, print_ast=_unprinted, allow_x00=False, codec="utf-8"
    )

    @seed(seed_value)  # reproducible: the same documents on every run
    @settings(
        max_examples=count,
        deadline=None,
        database=None,  # no .hypothesis/ directory in the work tree
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(document: graphql.DocumentNode) -> None:
        documents.append(document)

    collect()
    return [steer(d, global_ids) for d in documents]


def _unprinted(document: graphql.DocumentNode) -> graphql.DocumentNode:
    return document


def problems(response: httpx.Response) -> list[str]:
    found = []
    if response.status_code >= 500:
        found.append(f"HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        return [*found, "not JSON"]
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code not in CODES:
            found.append(f"code {code}: {error.get('message')}")
    leak = LEAKS.search(response.text)
    if leak:
        found.append(f"leak {leak.group(0)!r}")
    return found


async def test_generated_queries_never_fail_the_server(
    world: World,  # noqa: F811
    client: httpx.AsyncClient,
    owner: asyncpg.Connection,
) -> None:
    started = time.monotonic()
    users = await everyone(owner)
    rows = await private_ids(owner, users)
    global_ids = sorted(to_global_id(t, i) for t, ids in rows.items() for i in ids)
    public = {
        "City": world.public.city,
        "Zone": world.public.zone,
        "Zoning": world.public.zoning,
        "Typology": world.public.typology,
        "Document": world.public.document,
    }
    global_ids += [to_global_id(t, i) for t, i in public.items()]

    viewers = [bearer(str(world.a.user)), bearer(str(world.admin)), bearer(str(world.b.user))]
    failures: list[tuple[str, list[str], str]] = []
    outcomes: Counter[str] = Counter()
    texts: list[str] = []
    in_flight = asyncio.Semaphore(3)

    async def run(i: int, query: str) -> None:
        async with in_flight:
            response = await client.post(
                "/graphql", json={"query": query}, headers=viewers[i % len(viewers)]
            )
        found = problems(response)
        if found:
            failures.append((query, found, response.text[:500]))
            return
        body = response.json()
        outcomes["errors" if body.get("errors") else "data"] += 1
        for error in body.get("errors") or []:
            outcomes[error["extensions"]["code"]] += 1

    loop = asyncio.get_running_loop()
    per_chunk = EXAMPLES // CHUNKS
    with ProcessPoolExecutor(
        max_workers=2, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        chunks = [
            loop.run_in_executor(pool, generate, seed_value, per_chunk, global_ids)
            for seed_value in range(CHUNKS)
        ]
        # run each chunk as soon as it is generated
        for chunk in asyncio.as_completed(chunks):
            batch = await chunk
            offset = len(texts)
            texts += batch
            await asyncio.gather(*(run(offset + i, q) for i, q in enumerate(batch)))
    elapsed = time.monotonic() - started
    assert len(texts) >= EXAMPLES
    assert len(set(texts)) >= EXAMPLES * 0.9, "hypothesis repeated itself too much"
    assert not failures, failures[:5]
    # most documents ran to completion (the steering works)
    assert outcomes["data"] > EXAMPLES / 2, outcomes
    print(
        f"\nfuzz: {len(texts)} queries ({len(set(texts))} distinct) generated and run in "
        f"{elapsed:.1f}s; outcomes {dict(outcomes)}"
    )
