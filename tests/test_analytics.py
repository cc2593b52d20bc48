"""``Query.chatEventStats`` and ``Query.chatEvents`` over ``analytics.chat_events``, checked
against plain SQL aggregates."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.db import StatementCounter
from resolvers.ids import to_global_id
from tests.factories import at, insert, make_event, make_user
from tests.graphql import codes, gql, ok

STATS = """
query Stats($groupBy: [ChatEventGroupBy!], $filter: ChatEventFilter) {
  chatEventStats(groupBy: $groupBy, filter: $filter) {
    source day modelName events tokensTotal costTotal
  }
}
"""

EVENTS = """
query Events($filter: ChatEventFilter, $first: Int, $after: String) {
  chatEvents(filter: $filter, first: $first, after: $after) {
    totalCount
    edges { cursor node {
      __typename id databaseId source modelName tokensTotal costTotal createdAt metadata
      user { databaseId }
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

SQL_BY_SOURCE = """
SELECT metadata->>'source' AS source, count(*) AS events,
       sum(tokens_total) AS tokens, sum(cost_total) AS cost
FROM analytics.chat_events
WHERE $1::uuid IS NULL OR user_id = $1::uuid
GROUP BY 1
"""

SQL_BY_DAY = """
SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS events,
       sum(tokens_total) AS tokens, sum(cost_total) AS cost
FROM analytics.chat_events GROUP BY 1
"""

SQL_BY_MODEL = """
SELECT model_name, count(*) AS events, sum(tokens_total) AS tokens, sum(cost_total) AS cost
FROM analytics.chat_events GROUP BY 1
"""

SQL_BY_SOURCE_AND_MODEL = """
SELECT metadata->>'source' AS source, model_name, count(*) AS events,
       sum(tokens_total) AS tokens, sum(cost_total) AS cost
FROM analytics.chat_events GROUP BY 1, 2
"""

SQL_EVENTS = """
SELECT id FROM analytics.chat_events
WHERE ($1::text IS NULL OR metadata->>'source' = $1)
  AND ($2::timestamptz IS NULL OR created_at >= $2)
  AND ($3::timestamptz IS NULL OR created_at < $3)
  AND ($4::uuid IS NULL OR user_id = $4)
  AND ($5::text IS NULL OR model_name = $5)
ORDER BY created_at DESC, id DESC
"""





def service() -> dict[str, Any]:
    return {"user": uuid.uuid4(), "role": "service_role"}


def bucket(
    *,
    source: str | None = None,
    day: str | None = None,
    model: str | None = None,
    events: int,
    tokens: int | None,
    cost: Decimal | None,
) -> dict[str, Any]:
    return {
        "source": source.upper() if source else None,
        "day": day,
        "modelName": model,
        "events": events,
        "tokensTotal": tokens or 0,
        "costTotal": str(cost if cost is not None else Decimal(0)),
    }


def key(b: dict[str, Any]) -> tuple[str, str, str]:
    return (b["source"] or "", b["day"] or "", b["modelName"] or "")


def same_buckets(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert sorted(actual, key=key) == sorted(expected, key=key)


@dataclass
class World:
    alice: uuid.UUID
    bob: uuid.UUID


# 23:30 at UTC-02:00 is 01:30 UTC the next day; 00:30 at UTC+02:00 is 22:30 UTC the day before.
LATE_WEST = datetime(2026, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
EARLY_EAST = datetime(2026, 3, 3, 0, 30, tzinfo=timezone(timedelta(hours=2)))


@pytest.fixture
async def world(owner: asyncpg.Connection) -> World:
    alice = await make_user(owner, "Alice")
    bob = await make_user(owner, "Bob")
    for minutes, source, model, tokens, cost in [
        (0, "v1", "gpt-4o-mini", 100, "0.0100"),
        (10, "v2", "gpt-4o-mini", 250, "0.0250"),
        (20, "v1", "claude-3-5", 400, "0.1200"),
        (30, "v2", "claude-3-5", 50, "0.0075"),
        (60 * 24, "v1", "gpt-4o-mini", 120, "0.0130"),  # the next day
        (60 * 24 + 5, "v2", "mistral-large", 333, "0.0999"),
    ]:
        await make_event(owner, alice, source=source, minutes=minutes, model=model, tokens=tokens,
                         cost=cost)
    for minutes, source, model, tokens, cost in [
        (1, "v1", "gpt-4o-mini", 70, "0.0070"),
        (2, "v2", "mistral-large", 900, "0.3000"),
        (60 * 48, "v2", "gpt-4o-mini", 10, "0.0010"),
    ]:
        await make_event(owner, bob, source=source, minutes=minutes, model=model, tokens=tokens,
                         cost=cost)
    # day boundaries expressed in other offsets, and an event without tokens or cost
    await insert(owner, "analytics.chat_events", user_id=bob, model_name="gpt-4o-mini",
                 tokens_total=11, cost_total=Decimal("0.0011"), metadata={"source": "v1"},
                 created_at=LATE_WEST)
    await insert(owner, "analytics.chat_events", user_id=bob, model_name="gpt-4o-mini",
                 tokens_total=22, cost_total=Decimal("0.0022"), metadata={"source": "v2"},
                 created_at=EARLY_EAST)
    await insert(owner, "analytics.chat_events", user_id=alice, model_name="claude-3-5",
                 metadata={"source": "v2"}, created_at=at(40))
    return World(alice=alice, bob=bob)


# --- chatEventStats -------------------------------------------------------------------------


async def test_stats_by_source_equal_sql(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # given events of both stores, when the service role groups them by source
    data = ok(await gql(client, STATS, {"groupBy": ["SOURCE"]}, **service()))

    # then the buckets equal the SQL aggregate
    expected = [
        bucket(source=r["source"], events=r["events"], tokens=r["tokens"], cost=r["cost"])
        for r in await owner.fetch(SQL_BY_SOURCE, None)
    ]
    assert len(expected) == 2
    same_buckets(data["chatEventStats"], expected)
    total = sum(b["events"] for b in data["chatEventStats"])
    assert total == await owner.fetchval("SELECT count(*) FROM analytics.chat_events")


async def test_cost_is_a_decimal_string_and_keeps_its_scale(
    client: httpx.AsyncClient, world: World
) -> None:
    data = ok(await gql(client, STATS, {"groupBy": ["SOURCE"]}, **service()))
    by_source = {b["source"]: b for b in data["chatEventStats"]}
    # v1: 0.0100 + 0.1200 + 0.0130 + 0.0070 + 0.0011
    assert by_source["V1"]["costTotal"] == "0.1511"
    assert isinstance(by_source["V2"]["costTotal"], str)
    assert Decimal(by_source["V2"]["costTotal"]) == Decimal("0.4356")


async def test_day_buckets_are_utc_days(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # given a database session time zone far from UTC (the gateway's sessions inherit it)
    database = await owner.fetchval("SELECT current_database()")
    await owner.execute(f'ALTER DATABASE "{database}" SET timezone TO \'Pacific/Auckland\'')

    # when the service role groups by day
    data = ok(await gql(client, STATS, {"groupBy": ["DAY"]}, **service()))

    # then the buckets are UTC days: 23:30-02:00 counts on the next day, 00:30+02:00 on the
    # day before
    expected = [
        bucket(day=r["day"].isoformat(), events=r["events"], tokens=r["tokens"], cost=r["cost"])
        for r in await owner.fetch(SQL_BY_DAY)
    ]
    same_buckets(data["chatEventStats"], expected)
    by_day = {b["day"]: b["events"] for b in data["chatEventStats"]}
    assert LATE_WEST.astimezone(UTC).date().isoformat() == "2026-03-02"
    assert EARLY_EAST.astimezone(UTC).date().isoformat() == "2026-03-02"
    # 2026-03-01: alice 0,10,20,30,40 + bob 1,2 ; 03-02: alice 2 + LATE_WEST + EARLY_EAST ;
    # 03-03: bob's last
    assert by_day == {"2026-03-01": 7, "2026-03-02": 4, "2026-03-03": 1}


async def test_stats_by_model_equal_sql(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    data = ok(await gql(client, STATS, {"groupBy": ["MODEL"]}, **service()))
    expected = [
        bucket(model=r["model_name"], events=r["events"], tokens=r["tokens"], cost=r["cost"])
        for r in await owner.fetch(SQL_BY_MODEL)
    ]
    assert len(expected) == 3
    same_buckets(data["chatEventStats"], expected)


async def test_combined_groups(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # when grouping by source and model (in either order, with a repeat)
    first = ok(await gql(client, STATS, {"groupBy": ["SOURCE", "MODEL"]}, **service()))
    second = ok(
        await gql(client, STATS, {"groupBy": ["MODEL", "SOURCE", "MODEL"]}, **service())
    )

    # then one bucket per (source, model) pair, equal to the SQL aggregate
    expected = [
        bucket(source=r["source"], model=r["model_name"], events=r["events"],
               tokens=r["tokens"], cost=r["cost"])
        for r in await owner.fetch(SQL_BY_SOURCE_AND_MODEL)
    ]
    same_buckets(first["chatEventStats"], expected)
    same_buckets(second["chatEventStats"], expected)


async def test_all_three_groups(client: httpx.AsyncClient, world: World) -> None:
    data = ok(await gql(client, STATS, {"groupBy": ["DAY", "SOURCE", "MODEL"]}, **service()))
    buckets = data["chatEventStats"]
    assert all(b["day"] and b["source"] and b["modelName"] for b in buckets)
    assert sum(b["events"] for b in buckets) == 12
    assert len({key(b) for b in buckets}) == len(buckets)


async def test_no_group_is_one_total_bucket(client: httpx.AsyncClient, world: World) -> None:
    data = ok(await gql(client, STATS, {}, **service()))
    assert data["chatEventStats"] == [
        {
            "source": None,
            "day": None,
            "modelName": None,
            "events": 12,
            "tokensTotal": 100 + 250 + 400 + 50 + 120 + 333 + 70 + 900 + 10 + 11 + 22,
            "costTotal": "0.5867",
        }
    ]


async def test_stats_filters(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # when stats are filtered by source, model, user and time window
    data = ok(
        await gql(
            client,
            STATS,
            {
                "groupBy": ["SOURCE"],
                "filter": {
                    "source": "V2",
                    "modelName": "gpt-4o-mini",
                    "userId": to_global_id("Profile", world.alice),
                    "from": at(0).isoformat(),
                    "to": at(60).isoformat(),
                },
            },
            **service(),
        )
    )

    # then only the matching events are aggregated
    assert data["chatEventStats"] == [
        bucket(source="v2", events=1, tokens=250, cost=Decimal("0.0250"))
    ]


async def test_a_user_sees_stats_over_their_own_events(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # when each user asks for stats by source
    for user in (world.alice, world.bob):
        data = ok(await gql(client, STATS, {"groupBy": ["SOURCE"]}, user=user))

        # then only their own events count
        expected = [
            bucket(source=r["source"], events=r["events"], tokens=r["tokens"], cost=r["cost"])
            for r in await owner.fetch(SQL_BY_SOURCE, user)
        ]
        same_buckets(data["chatEventStats"], expected)


async def test_an_admin_sees_stats_over_every_event(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    admin = await make_user(owner, "Admin", is_admin=True)
    data = ok(await gql(client, STATS, {"groupBy": ["SOURCE"]}, user=admin))
    expected = [
        bucket(source=r["source"], events=r["events"], tokens=r["tokens"], cost=r["cost"])
        for r in await owner.fetch(SQL_BY_SOURCE, None)
    ]
    same_buckets(data["chatEventStats"], expected)


async def test_anonymous_stats_are_empty_without_sql(
    client: httpx.AsyncClient, world: World, statements: StatementCounter
) -> None:
    statements.reset()
    data = ok(await gql(client, STATS, {"groupBy": ["SOURCE", "DAY"]}))
    assert data["chatEventStats"] == []
    assert statements.total == 0, statements.statements


async def test_stats_without_events_are_empty(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    user = await make_user(owner)
    data = ok(await gql(client, STATS, {"groupBy": ["SOURCE"]}, user=user))
    assert data["chatEventStats"] == []


# --- chatEvents -------------------------------------------------------------------------------


async def expected_events(
    owner: asyncpg.Connection,
    *,
    source: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    user: uuid.UUID | None = None,
    model: str | None = None,
) -> list[str]:
    rows = await owner.fetch(SQL_EVENTS, source, start, end, user, model)
    return [str(r["id"]) for r in rows]


async def page_events(
    client: httpx.AsyncClient,
    filter: dict[str, Any] | None,
    *,
    first: int = 2,
    **who: Any,
) -> tuple[list[dict[str, Any]], set[int]]:
    nodes: list[dict[str, Any]] = []
    counts: set[int] = set()
    after = None
    while True:
        data = ok(
            await gql(client, EVENTS, {"filter": filter, "first": first, "after": after}, **who)
        )
        connection = data["chatEvents"]
        nodes += [e["node"] for e in connection["edges"]]
        counts.add(connection["totalCount"])
        if not connection["pageInfo"]["hasNextPage"]:
            return nodes, counts
        after = connection["pageInfo"]["endCursor"]
        assert len(nodes) < 100


async def test_chat_events_by_source_newest_first_with_paging(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # when the service role pages through the v1 events two at a time
    nodes, counts = await page_events(client, {"source": "V1"}, **service())

    # then only v1 events come, newest first, counted whole on every page
    expected = await expected_events(owner, source="v1")
    assert [n["databaseId"] for n in nodes] == expected
    assert {n["source"] for n in nodes} == {"V1"}
    assert {n["__typename"] for n in nodes} == {"ChatEvent"}
    assert counts == {len(expected)} == {5}
    created = [datetime.fromisoformat(n["createdAt"]) for n in nodes]
    assert created == sorted(created, reverse=True)
    assert all(n["metadata"] == {"source": "v1"} for n in nodes)


async def test_chat_events_without_filter(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    nodes, counts = await page_events(client, None, first=5, **service())
    assert [n["databaseId"] for n in nodes] == await expected_events(owner)
    assert counts == {12}


async def test_chat_events_with_equal_instants_page_by_id(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    # given five events at the very same instant
    user = await make_user(owner)
    for _ in range(5):
        await make_event(owner, user, source="v2", minutes=3)

    # when they are paged two at a time
    nodes, _ = await page_events(client, None, user=user)

    # then each comes once, ordered by id descending
    assert [n["databaseId"] for n in nodes] == await expected_events(owner, user=user)
    assert len({n["databaseId"] for n in nodes}) == 5


@pytest.mark.parametrize(
    ("filter", "sql"),
    [
        ({"from": at(10).isoformat()}, {"start": at(10)}),
        ({"to": at(10).isoformat()}, {"end": at(10)}),
        ({"from": at(2).isoformat(), "to": at(30).isoformat()}, {"start": at(2), "end": at(30)}),
        ({"modelName": "claude-3-5"}, {"model": "claude-3-5"}),
        ({"source": "V2", "modelName": "gpt-4o-mini"}, {"source": "v2", "model": "gpt-4o-mini"}),
        ({"from": LATE_WEST.isoformat()}, {"start": LATE_WEST}),
    ],
)
async def test_chat_events_filters(
    client: httpx.AsyncClient,
    owner: asyncpg.Connection,
    world: World,
    filter: dict[str, Any],
    sql: dict[str, Any],
) -> None:
    # when events are filtered
    nodes, counts = await page_events(client, filter, first=3, **service())

    # then they equal the SQL filter (from inclusive, to exclusive)
    expected = await expected_events(owner, **sql)
    assert [n["databaseId"] for n in nodes] == expected
    assert counts == {len(expected)}
    assert expected


async def test_from_is_inclusive_and_to_exclusive(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # given the event at exactly minute 10
    at_ten = await owner.fetchval(
        "SELECT id FROM analytics.chat_events WHERE created_at = $1", at(10)
    )

    # when it is a bound
    starting = await page_events(client, {"from": at(10).isoformat()}, first=20, **service())
    ending = await page_events(client, {"to": at(10).isoformat()}, first=20, **service())

    # then 'from' keeps it and 'to' drops it
    assert str(at_ten) in [n["databaseId"] for n in starting[0]]
    assert str(at_ten) not in [n["databaseId"] for n in ending[0]]


async def test_chat_events_user_filter(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # when the service role filters on Bob
    nodes, counts = await page_events(
        client, {"userId": to_global_id("Profile", world.bob)}, **service()
    )

    # then only Bob's events come
    assert [n["databaseId"] for n in nodes] == await expected_events(owner, user=world.bob)
    assert {n["user"]["databaseId"] for n in nodes} == {str(world.bob)}
    assert counts == {5}


async def test_chat_events_user_filter_of_the_wrong_type(
    client: httpx.AsyncClient, world: World
) -> None:
    body = await gql(
        client, EVENTS, {"filter": {"userId": to_global_id("Document", world.bob)}}, **service()
    )
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] is None


async def test_a_user_reads_only_their_own_events(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    # when Alice lists every event, and filters on Bob
    mine, counts = await page_events(client, None, first=4, user=world.alice)
    bobs, bob_counts = await page_events(
        client, {"userId": to_global_id("Profile", world.bob)}, user=world.alice
    )

    # then she sees hers only
    assert [n["databaseId"] for n in mine] == await expected_events(owner, user=world.alice)
    assert counts == {7}
    assert bobs == []
    assert bob_counts == {0}


async def test_anonymous_events_are_empty(
    client: httpx.AsyncClient, world: World, statements: StatementCounter
) -> None:
    statements.reset()
    data = ok(await gql(client, EVENTS, {"first": 5}))
    assert data["chatEvents"]["edges"] == []
    assert data["chatEvents"]["totalCount"] == 0
    assert statements.total == 0


async def test_cost_total_is_serialised_as_a_string(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    nodes, _ = await page_events(client, {"modelName": "mistral-large"}, **service())
    assert sorted(n["costTotal"] for n in nodes) == ["0.0999", "0.3000"]
    assert all(isinstance(n["tokensTotal"], int) for n in nodes)
    # an event without cost has a null costTotal
    empty, _ = await page_events(client, {"from": at(40).isoformat(), "to": at(41).isoformat()},
                                 **service())
    assert [(n["costTotal"], n["tokensTotal"]) for n in empty] == [(None, None)]


@pytest.mark.parametrize("first", [0, 101, -1])
async def test_chat_events_first_out_of_range(
    client: httpx.AsyncClient, world: World, first: int
) -> None:
    body = await gql(client, EVENTS, {"first": first}, **service())
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_chat_events_first_null_means_twenty(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    user = await make_user(owner)
    for minute in range(23):
        await make_event(owner, user, source="v1", minutes=minute)
    data = ok(await gql(client, EVENTS, {"first": None}, user=user))
    assert len(data["chatEvents"]["edges"]) == 20
    assert data["chatEvents"]["pageInfo"]["hasNextPage"] is True
    assert data["chatEvents"]["totalCount"] == 23


async def test_a_conversation_cursor_is_refused_by_chat_events(
    client: httpx.AsyncClient, owner: asyncpg.Connection, world: World
) -> None:
    from tests.factories import make_v1_conversation

    await make_v1_conversation(owner, world.alice)
    data = ok(await gql(client, "{ conversations(first: 1) { pageInfo { endCursor } } }",
                        user=world.alice))
    cursor = data["conversations"]["pageInfo"]["endCursor"]
    body = await gql(client, EVENTS, {"first": 2, "after": cursor}, user=world.alice)
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_event_timestamps_without_offset_are_refused(
    client: httpx.AsyncClient, world: World
) -> None:
    body = await gql(client, EVENTS, {"filter": {"from": "2026-03-01T09:00:00"}}, **service())
    assert codes(body) == ["BAD_USER_INPUT"]
