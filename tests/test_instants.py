"""Instants written in responses are selected in text form and parsed (``gateway.db.instants``)
to the same aware UTC ``datetime`` that asyncpg's binary decoder gives, so responses and
cursors are byte-for-byte what they were."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import StatementCounter, create_engine
from gateway.db.connection import driver
from gateway.db.instants import parse, text_form
from gateway.settings import Settings
from resolvers.ids import to_global_id
from tests.conftest import bearer
from tests.factories import make_user, make_v2_conversation

STORED = [
    "2020-01-02 03:04:05.12+00",  # a fraction PostgreSQL writes without its trailing zeros
    "2020-01-02 03:04:05.000006+00",
    "2020-01-02 03:04:05+02",  # stored from another zone: read back in UTC
    "1999-12-31 23:59:59.999999-11:30",
    "0005-07-01 00:00:00+00",
    "infinity",
    "-infinity",
]


async def binary(conn: asyncpg.Connection) -> list[datetime]:
    """``STORED`` as asyncpg's own binary decoder reads it."""
    return [await conn.fetchval("SELECT $1::text::timestamptz", value) for value in STORED]


async def parsed(engine: AsyncEngine) -> tuple[list[datetime], str]:
    """``STORED`` read in text form on a connection of ``engine``, and its session's zone."""
    async with engine.connect() as conn:
        raw = driver(conn)
        read = [
            parse(await raw.fetchval(f"SELECT {text_form('$1::text::timestamptz')}", value))
            for value in STORED
        ]
        zone = await raw.fetchval("SELECT current_setting('TimeZone')")
    return read, zone


async def test_instants_parse_to_what_the_binary_decoder_gives(
    engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    expected = await binary(owner)
    read, _ = await parsed(engine)
    assert read == expected
    assert [v.tzinfo for v in read] == [v.tzinfo for v in expected]
    assert read[0].tzinfo is UTC
    # the bytes a response is written from, and the strings a cursor is
    assert orjson.dumps(read) == orjson.dumps(expected)
    assert [v.isoformat() for v in read] == [v.isoformat() for v in expected]
    assert orjson.dumps(read[:2]) == (
        b'["2020-01-02T03:04:05.120000+00:00","2020-01-02T03:04:05.000006+00:00"]'
    )


async def test_a_year_the_driver_cannot_hold_is_refused_as_before(
    engine: AsyncEngine, owner: asyncpg.Connection
) -> None:
    bc = "SELECT '0044-03-15 12:00+00 BC'::timestamptz"
    with pytest.raises(OverflowError):
        await owner.fetchval(bc)
    async with engine.connect() as conn:
        text = await driver(conn).fetchval(f"SELECT {text_form(bc[7:])}")
    with pytest.raises(OverflowError):  # as asyncpg's; not a ValueError (the client's input)
        parse(text)


async def test_an_instant_out_of_range_is_its_fields_internal_error(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    """A stored instant the driver cannot hold nulls its root field with a masked internal
    error at that field; the operation's other root fields answer."""
    user = await make_user(owner, "Ana")
    conversation = await make_v2_conversation(owner, user, messages=1)
    await owner.execute(
        "UPDATE v2_messages SET created_at = '0044-03-15 12:00+00 BC' WHERE conversation_id = $1",
        conversation,
    )
    query = """query($id: ID!) {
      a: node(id: $id) { ... on V2Conversation { messages(first: 5) { edges { node {
        createdAt } } } } }
      b: node(id: $id) { id }
    }"""
    node = to_global_id("V2Conversation", conversation)
    response = await client.post(
        "/graphql", json={"query": query, "variables": {"id": node}}, headers=bearer(str(user))
    )
    body = response.json()
    assert body["data"] == {"a": None, "b": {"id": node}}
    (error,) = body["errors"]
    assert error["path"] == ["a"]
    assert error["extensions"]["code"] == "INTERNAL"
    assert error["message"] == "Internal server error."


async def test_the_session_settings_win_over_the_urls_options(
    gateway_url: URL, settings: Settings, owner: asyncpg.Connection
) -> None:
    """Another session zone changes nothing written (the text form names UTC); another date
    style would change the text form, so the gateway's start-up setting comes after the
    URL's options, whose others still hold."""
    url = gateway_url.update_query_dict(
        {"options": "-c TimeZone=Europe/Paris -c DateStyle=SQL,DMY -c lock_timeout=1234"}
    )
    engine = create_engine(url, settings, pool_size=1)
    try:
        read, zone = await parsed(engine)
        async with engine.connect() as conn:
            raw = driver(conn)
            lock_timeout = await raw.fetchval("SELECT current_setting('lock_timeout')")
            style = await raw.fetchval("SELECT current_setting('DateStyle')")
    finally:
        await engine.dispose()
    assert (zone, style, lock_timeout) == ("Europe/Paris", "ISO, MDY", "1234ms")
    assert read == await binary(owner)


async def test_a_responses_instants_are_read_as_text_and_written_as_before(
    client: httpx.AsyncClient,
    statements: StatementCounter,
    owner: asyncpg.Connection,
) -> None:
    """A ``DateTime`` leaf is selected in text form; the cursor's instant, which the gateway
    compares, is not; the response writes the stored instant in UTC with its microseconds."""
    user = await make_user(owner, "Ana")
    conversation = await make_v2_conversation(owner, user, messages=2)
    await owner.execute(
        "UPDATE v2_messages SET created_at = $2::text::timestamptz + (interval '1 second' * turn)"
        " FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS turn FROM v2_messages"
        " WHERE conversation_id = $1) o WHERE v2_messages.id = o.id",
        conversation,
        "2024-02-29 23:59:58.12+02",
    )
    query = """query($id: ID!) { node(id: $id) { ... on V2Conversation {
      messages(first: 5) { edges { cursor node { createdAt } } } } } }"""
    statements.reset()
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": {"id": to_global_id("V2Conversation", conversation)}},
        headers=bearer(str(user)),
    )
    edges = response.json()["data"]["node"]["messages"]["edges"]
    assert [e["node"]["createdAt"] for e in edges] == [
        "2024-02-29T21:59:59.120000+00:00",
        "2024-02-29T22:00:00.120000+00:00",
    ]
    (page,) = [s for s in statements.statements if "v2_messages" in s]
    assert text_form("t.created_at") in page
    assert "t.created_at," in page.replace(text_form("t.created_at"), "")  # the cursor's
