"""Global ids (``resolvers.ids``): base64url of ``Type:uuid``, written without the url-safe
translation, which such text never needs."""

from __future__ import annotations

import base64
import random
import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson
import pytest

from resolvers.ids import NODE_TYPES, encode_cursor, from_global_id, to_global_id
from schema.engine import cache, writer
from tests.conftest import bearer
from tests.factories import make_user, make_v2_conversation
from tests.graphql import gid


def reference(type_name: str, database_id: uuid.UUID) -> str:
    text = f"{type_name}:{database_id}".encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def test_every_node_type_is_a_name_of_letters_and_digits() -> None:
    """The premise of writing ids without translating '+' and '/'."""
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name) for name in NODE_TYPES)


@pytest.mark.parametrize("type_name", sorted(NODE_TYPES))
def test_ids_are_url_safe_base64_of_type_and_uuid(type_name: str) -> None:
    rng = random.Random(type_name)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(3000)]
    ids += [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]
    for database_id in ids:
        written = to_global_id(type_name, database_id)
        assert written == reference(type_name, database_id)
        assert "+" not in written and "/" not in written and "=" not in written
        assert from_global_id(written) == (type_name, database_id)


async def test_the_drivers_uuids_are_written_alike(owner: asyncpg.Connection) -> None:
    """asyncpg's own uuid type, as rows carry it."""
    rows = await owner.fetch("SELECT gen_random_uuid() AS id FROM generate_series(1, 500)")
    for row in rows:
        database_id = row["id"]
        assert type(database_id) is not uuid.UUID  # asyncpg's pgproto.UUID
        assert to_global_id("V2Message", database_id) == reference(
            "V2Message", uuid.UUID(str(database_id))
        )


async def test_a_responses_repeated_ids_are_written_once_each_and_forgotten_after(
    client: httpx.AsyncClient, owner: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writers encode a row's global id once per response (an author repeated on every
    message, a reply that is also a node of the page) and look it up after; the memo is
    emptied when the response is written, so it holds no request's ids and does not grow."""
    encoded: Counter[tuple[str, str]] = Counter()

    def counted(type_name: str, key: uuid.UUID | str) -> str:
        encoded[type_name, str(key)] += 1
        return to_global_id(type_name, key)

    monkeypatch.setattr(writer, "to_global_id", counted)  # in the writers this plan builds
    user = await make_user(owner, "Ana")
    conversation = await make_v2_conversation(owner, user, messages=5)
    query = """query MemoOfIds($id: ID!) { node(id: $id) { ... on V2Conversation {
      id owner { id } messages(first: 5) { edges { node {
        id author { id } replyTo { id } } } } } } }"""
    variables = {"id": gid("V2Conversation", conversation)}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=bearer(str(user))
    )
    body = response.json()
    assert "errors" not in body, body
    node = body["data"]["node"]
    rows = await owner.fetch(
        "SELECT id, role, reply_to_message_id FROM v2_messages WHERE conversation_id = $1"
        " ORDER BY created_at, id",
        conversation,
    )
    assert node["id"] == reference("V2Conversation", conversation)
    assert node["owner"] == {"id": reference("Profile", user)}
    written = [e["node"] for e in node["messages"]["edges"]]
    assert written == [
        {
            "id": reference("V2Message", row["id"]),
            "author": {"id": reference("Profile", user)} if row["role"] == "user" else None,
            "replyTo": None
            if row["reply_to_message_id"] is None
            else {"id": reference("V2Message", row["reply_to_message_id"])},
        }
        for row in rows
    ]
    # the owner and 3 user messages' author, 4 replies to messages of the page: encoded once
    assert encoded == Counter(
        {("V2Conversation", str(conversation)): 1, ("Profile", str(user)): 1}
        | {("V2Message", str(row["id"])): 1 for row in rows}
    )
    memos = [
        m
        for _, _, plan in cache._plans.values()
        if not isinstance(plan, Exception)
        for root in plan.roots
        for m in root.memos
    ]
    assert memos, "the plan writes ids through memos"
    assert all(not m for m in memos)


def reference_cursor(kind: str, *parts: object) -> str:
    values = [
        None if p is None else p.isoformat() if isinstance(p, datetime) else str(p) for p in parts
    ]
    return base64.urlsafe_b64encode(orjson.dumps([kind, *values])).decode().rstrip("=")


def test_cursors_are_url_safe_base64_of_their_parts_in_iso_8601() -> None:
    """A cursor's instant is written by orjson when it is in UTC (as every instant read is),
    by ``isoformat`` otherwise; the cursors are those of the reference form for instants with
    and without microseconds, at the ends of the calendar, in other offsets (a zone's
    historical offset of seconds among them), and for text that base64 writes with '+' and
    '/'."""
    rng = random.Random(7)
    zones = [
        UTC,
        None,
        timezone(timedelta(hours=-5, minutes=-30)),
        ZoneInfo("Europe/Paris"),
    ]
    instants = [
        datetime.max.replace(tzinfo=UTC),
        datetime.min.replace(tzinfo=UTC),
    ]
    for _ in range(3000):
        instants.append(
            datetime(
                rng.randint(1, 9999),
                rng.randint(1, 12),
                rng.randint(1, 28),
                rng.randint(0, 23),
                rng.randint(0, 59),
                rng.randint(0, 59),
                rng.choice([0, 1, 500_000, rng.randint(0, 999_999)]),
                tzinfo=rng.choice(zones),
            )
        )
    assert any(i.tzinfo is not None and i.utcoffset() % timedelta(minutes=1) for i in instants)
    for instant in instants:
        key = uuid.UUID(int=rng.getrandbits(128))
        assert encode_cursor("message", instant, str(key)) == reference_cursor(
            "message", instant, key
        )
        assert encode_cursor("message", instant, key) == reference_cursor("message", instant, key)
    texts = ["", "?>~", "é" * 7, "a/b+c", None]
    for text in texts:
        assert encode_cursor("document", text, "k") == reference_cursor("document", text, "k")
    assert any(
        c in base64.b64encode(orjson.dumps(["document", t])).decode() for t in texts for c in "+/"
    )
