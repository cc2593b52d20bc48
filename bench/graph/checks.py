"""The checks before any figure: every server answers, R1 data equal across the servers, R4
buckets equal to the bare SQL ``GROUP BY``; and after the writes of R8, the conversations'
stored counts equal to the live ones."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from bench.graph.context import Context
from bench.graph.servers import Server
from bench.graph.workloads import R4_SQL, R8_TEXT, Request, Workload


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
    """``request`` sent to ``server`` with its own token, else ``token``."""
    response = httpx.post(
        server.base + request.path, content=request.body, timeout=60.0,
        headers={"content-type": "application/json",
                 "authorization": f"Bearer {request.token or token}"},
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


R8_COUNTS = """
SELECT count(*)::int AS conversations,
  count(*) FILTER (WHERE c.message_count IS DISTINCT FROM live.n)::int AS wrong_count,
  count(*) FILTER (WHERE c.last_message_at IS DISTINCT FROM live.latest)::int AS wrong_last,
  coalesce(sum(live.posted), 0)::int AS posted,
  coalesce(sum(live.posted - live.turns), 0)::int AS turn_clashes
FROM v2_conversations c
CROSS JOIN LATERAL (
  SELECT count(*) AS n, max(m.created_at) AS latest,
    count(*) FILTER (WHERE m.message LIKE $2::text || '%') AS posted,
    count(DISTINCT m.conversation_turn) FILTER (WHERE m.message LIKE $2::text || '%') AS turns
  FROM v2_messages m WHERE m.conversation_id = c.id) live
WHERE c.id = ANY($1::uuid[])
"""

# The posted messages' events: one each, tagged v2, of the conversation's owner.
R8_EVENTS = """
SELECT count(e.id)::int AS events,
  count(*) FILTER (WHERE e.id IS NULL)::int AS without_event,
  count(e.id) FILTER (WHERE e.metadata->>'source' IS DISTINCT FROM 'v2'
    OR e.conversation_id IS DISTINCT FROM m.conversation_id
    OR e.user_id IS DISTINCT FROM m.user_id)::int AS wrong_event
FROM v2_messages m LEFT JOIN analytics.chat_events e ON e.message_id = m.id
WHERE m.conversation_id = ANY($1::uuid[]) AND m.message LIKE $2::text || '%'
"""


async def check_r8(owner: dict[str, Any], conversations: list[uuid.UUID]) -> str:
    """After R8's writes: in every conversation written to, ``message_count`` equals the live
    count of its messages and ``last_message_at`` the latest one's; the posted messages have
    distinct turns and one v2 event each. A one-line summary: "R8 counts: ok — …" or
    "R8 counts: MISMATCH — …"."""
    ids = sorted(set(conversations))
    conn = await asyncpg.connect(**owner)
    try:
        counts = await conn.fetchrow(R8_COUNTS, ids, R8_TEXT)
        events = await conn.fetchrow(R8_EVENTS, ids, R8_TEXT)
    finally:
        await conn.close()
    problems = [
        f"{counts['wrong_count']} message_count != live count",
        f"{counts['wrong_last']} last_message_at != latest message",
        f"{counts['turn_clashes']} posted messages sharing a turn",
        f"{events['without_event']} posted messages without an event",
        f"{events['wrong_event'] + max(0, events['events'] - counts['posted'])} wrong or extra "
        f"events",
    ]
    bad = [p for p in problems if not p.startswith("0 ")]
    if counts["conversations"] != len(ids):
        bad.append(f"{len(ids) - counts['conversations']} conversations not found")
    summary = (
        f"{counts['posted']:,} messages posted (every server) into {counts['conversations']} "
        "conversations: "
        "message_count = live count, last_message_at = latest message, distinct turns, one v2 "
        "event each"
    )
    if bad:
        return f"R8 counts: MISMATCH — {'; '.join(bad)} ({counts['posted']:,} posted)"
    return f"R8 counts: ok — {summary}"
