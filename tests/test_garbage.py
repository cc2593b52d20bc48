"""A request leaves no reference cycles behind: what it allocated is freed as soon as it is
answered, so that the cycle collector, which walks every young object alive, seldom runs
(``gateway.http.runtime.GC_THRESHOLD``). graphql-core's executor held its resolver helpers as
bound methods of itself, and a SQLAlchemy statement turned into text for a span that nothing
recorded built a dialect: both were a cycle per request, holding the request's context."""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.http.app import create_app
from gateway.settings import Settings
from tests.conftest import bearer

USER = "8c4d3a0e-6a0b-4d7e-9a51-0f6c1b2e3d4a"
QUERIES = [
    "{ viewer { id } conversations(first: 5) { totalCount edges { node { id title } } } }",
    "{ cities(first: 3) { edges { node { name } } } }",
    'query { node(id: "VjJDb252ZXJzYXRpb246MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw") '
    "{ id } }",
    "{ __typename }",
]


def collect_afresh() -> None:
    """Free every unreachable object so far (kept ones included), then keep what the next
    collections find in ``gc.garbage``."""
    gc.set_debug(0)
    gc.garbage.clear()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """The collector runs only when asked, and keeps what it finds (``gc.garbage``)."""
    gc.disable()
    collect_afresh()
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()
        gc.enable()


async def post(app: Any, query: str) -> tuple[int, dict[str, Any]]:
    """``POST /graphql`` straight into the ASGI app (no client: its objects would count)."""
    body = orjson.dumps({"query": query})
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        "headers": [
            (b"content-type", b"application/json"),
            (b"authorization", bearer(USER)["Authorization"].encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], orjson.loads(answer)


async def test_requests_leave_no_reference_cycles(
    engine: AsyncEngine, settings: Settings, saved_garbage: list[object]
) -> None:
    app = create_app(settings, engine=engine)
    for query in QUERIES:  # the first time: documents parsed, plans compiled, caches filled
        await post(app, query)
    collect_afresh()
    for _ in range(10):
        for query in QUERIES:
            status, body = await post(app, query)
            assert status == 200
            assert "errors" not in body, body
    gc.collect()
    kinds = Counter(type(o).__qualname__ for o in saved_garbage)
    # 40 requests: anything a request leaves would be here 10 times over
    assert not [kind for kind, count in kinds.items() if count >= 10], kinds.most_common(10)
