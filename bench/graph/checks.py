"""The checks before any figure: every server answers, R1 data equal across the servers, R4
buckets equal to the bare SQL ``GROUP BY``."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

from bench.graph.context import Context
from bench.graph.servers import Server
from bench.graph.workloads import R4_SQL, Request, Workload


def instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


Normalised = list[tuple[Any, ...]]


def normalise_r1(payload: dict[str, Any]) -> Normalised:
    """(title, lastMessageAt, project name, city, [(role, text, createdAt)]) per conversation,
    whatever the server's names."""
    if payload.get("errors"):
        raise AssertionError(f"errors in the response: {payload['errors']}")
    data = payload["data"]
    rows: Normalised = []
    if "conversations" in data:
        for edge in data["conversations"]["edges"]:
            n = edge["node"]
            city = n["project"]["mainCity"]
            messages = [
                (m["node"]["role"].lower(), m["node"]["text"], instant(m["node"]["createdAt"]))
                for m in n["messages"]["edges"]
            ]
            rows.append((n["title"], instant(n["lastMessageAt"]), n["project"]["name"],
                         city and city["name"], messages))
    else:
        for n in data["allV2Conversations"]["nodes"]:
            project = n["v2ProjectByProjectId"]
            city = project["cityByMainCityId"]
            messages = [
                (m["role"].lower(), m["message"], instant(m["createdAt"]))
                for m in n["v2MessagesByConversationId"]["nodes"]
            ]
            rows.append((n["title"], instant(n["lastMessageAt"]), project["name"],
                         city and city["name"], messages))
    return rows


def post(server: Server, request: Request, token: str) -> tuple[dict[str, Any], int]:
    response = httpx.post(
        server.base + request.path, content=request.body, timeout=60.0,
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    if response.status_code != 200:
        raise AssertionError(
            f"{server.name} {request.path}: HTTP {response.status_code}: {response.text[:1000]}"
        )
    return response.json(), len(response.content)


def check_answers(ctx: Context, workloads: list[Workload], per_server: int = 4) -> None:
    """Every server answers a few of each workload's bodies with data and no error."""
    for w in workloads:
        for name, requests in w.requests.items():
            for request in requests[:per_server]:
                payload, _ = post(ctx.servers[name], request, ctx.token)
                data = payload.get("data") or {}
                if payload.get("errors") or not data or None in data.values():
                    raise AssertionError(
                        f"{w.key} on {name}: {json.dumps(payload)[:600]} for {request.body[:200]!r}"
                    )


def check_r1(ctx: Context, r1: Workload) -> int:
    """Every server's R1 data equal to the gateway's; returns the response size in bytes."""
    reference, size = post(ctx.servers["gateway"], r1.requests["gateway"][0], ctx.token)
    expected = normalise_r1(reference)
    if len(expected) != min(50, ctx.scale.conversations) or not all(r[4] for r in expected):
        raise AssertionError(f"R1 from the gateway has {len(expected)} conversations")
    for name, requests in r1.requests.items():
        if name == "gateway":
            continue
        got = normalise_r1(post(ctx.servers[name], requests[0], ctx.token)[0])
        if got != expected:
            pairs = enumerate(zip(got, expected, strict=False))
            first = next((i for i, (a, b) in pairs if a != b), None)
            detail = (
                f"first difference at conversation {first}:\n  {name}: {got[first]!r}\n"
                f"  gateway: {expected[first]!r}"
                if first is not None
                else f"{len(got)} vs {len(expected)} conversations"
            )
            raise AssertionError(f"R1 data differ between {name} and the gateway: {detail}")
    return size


async def bare_sql_r4(owner: dict[str, Any], runs: int = 5) -> tuple[float, list[Any]]:
    conn = await asyncpg.connect(**owner)
    try:
        times = []
        rows: list[Any] = []
        for _ in range(runs):
            began = time.perf_counter()
            rows = await conn.fetch(R4_SQL)
            times.append(time.perf_counter() - began)
        return min(times), rows
    finally:
        await conn.close()


def check_r4(ctx: Context, r4: Workload, sql_rows: list[Any], runs: int = 5) -> float:
    """The gateway's buckets equal the bare SQL's; returns its best single-request latency."""
    gateway = ctx.servers["gateway"]
    times = []
    payload: dict[str, Any] = {}
    for _ in range(runs):
        began = time.perf_counter()
        payload, _ = post(gateway, r4.requests["gateway"][0], ctx.token)
        times.append(time.perf_counter() - began)
    if payload.get("errors"):
        raise AssertionError(f"R4 errors: {payload['errors']}")
    got = [
        (b["source"], b["day"], b["events"], int(b["tokensTotal"]), str(b["costTotal"]))
        for b in payload["data"]["chatEventStats"]
    ]
    want = [
        (r["source"].upper(), r["day"].isoformat(), r["events"], int(r["tokens_total"]),
         str(r["cost_total"]))
        for r in sql_rows
    ]
    if sorted(got) != sorted(want):
        raise AssertionError(f"R4 buckets differ from SQL: {got[:3]} vs {want[:3]}")
    return min(times)
