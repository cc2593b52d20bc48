"""The raw-SQL limit: a plain ASGI app over asyncpg whose every response is built by Postgres.

    RAW_PG_HOST=<socket dir> RAW_PG_USER=authenticator RAW_PG_DATABASE=mwplu \\
        python -m uvicorn bench.raw_server:app --loop uvloop --http httptools

(over TCP: ``RAW_PG_HOST=<host> RAW_PG_PORT=<port> RAW_PG_PASSWORD=<authenticator's>``)

``POST /graphql`` answers the R1 shape of ``bench.graph`` (the first 50 v2 conversations by
``last_message_at`` desc with title, lastMessageAt, project {name, mainCity {name}} and their
first 10 messages {role, text, createdAt}) with ONE statement that builds the whole JSON
response (``json_build_object``/``json_agg``). ``POST /node`` answers the R3 shape (a
conversation of either store by global id) the same way. No GraphQL, no ORM, no Python-side
JSON: what is left is HTTP, one round trip and Postgres' own work — the limit a gateway can
approach. Connections switch to ``service_role`` once, when the pool opens them.

``POST /post-message`` answers R8 (``postMessage`` into a v2 conversation, the body's
``variables.input`` {conversationId, text}) with a bare transaction doing the gateway's writes:
BEGIN and the bearer token's role and claims set local to it (``SET LOCAL``, as the gateway
does; the token is decoded, not verified), the conversation row locked (``FOR UPDATE``: its
owner), the message inserted at the next turn by one CTE that also updates the conversation's
``message_count`` and ``last_message_at`` and writes the ``analytics.chat_events`` row
(metadata ``{"source": "v2"}``) through ``mwplu_private.record_chat_event`` as the gateway
does, COMMIT; the ids as the mutation's payload. It leaves out the gateway's idempotency,
reply and migration checks (no-ops for these requests) and the payload read.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from uuid import UUID

import asyncpg
import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

R1_SQL = """
SELECT json_build_object('data', json_build_object('conversations', json_build_object(
  'edges', coalesce(json_agg(json_build_object('node', json_build_object(
    'title', c.title,
    'lastMessageAt', c.last_message_at,
    'project', json_build_object(
      'name', p.name,
      'mainCity', CASE WHEN ci.id IS NULL THEN NULL ELSE json_build_object('name', ci.name) END),
    'messages', json_build_object('edges', (
      SELECT coalesce(json_agg(json_build_object('node', json_build_object(
        'role', upper(m.role), 'text', m.message, 'createdAt', m.created_at))
        ORDER BY m.created_at, m.id), '[]'::json)
      FROM (SELECT role, message, created_at, id FROM v2_messages
            WHERE conversation_id = c.id ORDER BY created_at, id LIMIT $2) m))
  )) ORDER BY c.last_message_at DESC NULLS LAST, c.id DESC), '[]'::json))))::text
FROM (SELECT id, title, last_message_at, project_id FROM v2_conversations
      ORDER BY last_message_at DESC NULLS LAST, id DESC LIMIT $1) c
JOIN v2_projects p ON p.id = c.project_id
LEFT JOIN cities ci ON ci.id = p.main_city_id
"""

R3_V2_SQL = """
SELECT json_build_object('data', json_build_object('node', (
  SELECT json_build_object('id', $2::text, 'source', 'V2', 'title', c.title,
    'lastMessageAt', c.last_message_at, 'messageCount', c.message_count)
  FROM v2_conversations c WHERE c.id = $1)))::text
"""

R3_V1_SQL = """
SELECT json_build_object('data', json_build_object('node', (
  SELECT json_build_object('id', $2::text, 'source', 'V1',
    'title', coalesce(d.title, (
      SELECT left(m.message, 80) FROM chat_messages m
      WHERE m.conversation_id = c.id AND m.role = 'user' ORDER BY m.created_at, m.id LIMIT 1)),
    'lastMessageAt', c.last_message_at,
    'messageCount', (SELECT count(*) FROM chat_messages m WHERE m.conversation_id = c.id))
  FROM chat_conversations c LEFT JOIN documents d ON d.id = c.document_id
  WHERE c.id = $1)))::text
"""

NODE_SQL = {"V1Conversation": R3_V1_SQL, "V2Conversation": R3_V2_SQL}

# R8, one round trip each. The lock first, on its own: a statement that waited for it would
# still read the turn with the snapshot it began with.
R8_LOCK = "SELECT user_id FROM v2_conversations WHERE id = $1 FOR UPDATE"
R8_MESSAGE = """
WITH turn AS (
  SELECT coalesce(max(conversation_turn), 0) + 1 AS n FROM v2_messages WHERE conversation_id = $1
), m AS (
  INSERT INTO v2_messages (conversation_id, user_id, role, message, conversation_turn)
  SELECT $1, $2, 'user', $3, turn.n FROM turn
  RETURNING id, conversation_turn, created_at
), c AS (
  UPDATE v2_conversations SET message_count = coalesce(message_count, 0) + 1,
    last_message_at = greatest(last_message_at, (SELECT created_at FROM m)), updated_at = now()
  WHERE id = $1
  RETURNING last_message_at
)
SELECT m.id, m.conversation_turn, c.last_message_at,
  mwplu_private.record_chat_event('v2', $1, m.id, $2, NULL, NULL, NULL, NULL, $2, NULL)
FROM m, c
"""
HEADERS = [(b"content-type", b"application/json")]


def decode_global_id(value: str) -> tuple[str, UUID]:
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    type_name, _, row_id = raw.partition(":")
    return type_name, UUID(row_id)


def to_global_id(type_name: str, row_id: UUID) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{row_id}".encode()).decode().rstrip("=")


def literal(value: str) -> str:
    """``value`` as an escape-string literal (only a simple query can send BEGIN and the
    set-up together, and it takes no bind parameters)."""
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def bearer_claims(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The claims of the request's bearer token (decoded, not verified: the limit)."""
    for name, value in headers:
        if name.lower() == b"authorization":
            token = value.decode().partition(" ")[2].strip()
            part = token.split(".")[1]
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
            claims: dict[str, Any] = orjson.loads(raw)
            return claims
    raise PermissionError("no bearer token")


async def post_message(
    pool: asyncpg.Pool, claims: dict[str, Any], variables: dict[str, Any]
) -> bytes:
    """R8's writes in one transaction as the token's viewer; the payload's JSON."""
    given = variables["input"]
    type_name, conversation_id = decode_global_id(given["conversationId"])
    role = str(claims.get("role", "authenticated"))
    setup = (
        f"BEGIN; SET LOCAL role = {literal(role)}; "
        f"SET LOCAL request.jwt.claims = {literal(orjson.dumps(claims).decode())}"
    )
    async with pool.acquire() as conn:
        await conn.execute(setup)
        try:
            owner = (
                await conn.fetchval(R8_LOCK, conversation_id)
                if type_name == "V2Conversation" else None
            )
            if owner is None:
                await conn.execute("ROLLBACK")
                return orjson.dumps({"data": {"postMessage": None}, "errors": [
                    {"message": "conversation not found", "extensions": {"code": "NOT_FOUND"}}
                ]})
            message_id, turn, last, event_id = await conn.fetchrow(
                R8_MESSAGE, conversation_id, owner, given["text"]
            )
            await conn.execute("COMMIT")
        except BaseException:
            if not conn.is_closed():
                await conn.execute("ROLLBACK")
            raise
    return orjson.dumps({"data": {"postMessage": {
        "message": {"id": to_global_id("V2Message", message_id), "conversationTurn": turn},
        "conversation": {"lastMessageAt": last},
        "event": {"id": to_global_id("ChatEvent", event_id)},
    }}})


async def _setup(conn: asyncpg.Connection) -> None:
    await conn.execute("SET ROLE service_role")


class RawApp:
    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if scope["method"] == "GET" and path == "/readyz":
            await self.respond(send, 200, b'{"status":"ready"}')
            return
        assert self.pool is not None
        variables = (orjson.loads(body).get("variables") or {}) if body else {}
        if path == "/post-message":
            try:
                claims = bearer_claims(scope["headers"])
            except (PermissionError, ValueError, IndexError):
                await self.respond(send, 401, b'{"error":"a bearer token is needed"}')
                return
            await self.respond(send, 200, await post_message(self.pool, claims, variables))
            return
        if path == "/graphql":
            first = int(variables.get("first", 50))
            payload = await self.pool.fetchval(R1_SQL, first, 10)
        elif path == "/node":
            type_name, row_id = decode_global_id(variables["id"])
            sql = NODE_SQL.get(type_name)
            if sql is None:
                payload = '{"data":{"node":null}}'
            else:
                payload = await self.pool.fetchval(sql, row_id, variables["id"])
        else:
            await self.respond(send, 404, b'{"error":"not found"}')
            return
        await self.respond(send, 200, payload.encode())

    @staticmethod
    async def respond(send: Send, status: int, body: bytes) -> None:
        headers = [*HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                size = int(os.environ.get("POOL_SIZE", "10"))
                self.pool = await asyncpg.create_pool(
                    host=os.environ["RAW_PG_HOST"],
                    port=os.environ.get("RAW_PG_PORT") or None,
                    user=os.environ.get("RAW_PG_USER", "authenticator"),
                    password=os.environ.get("RAW_PG_PASSWORD") or None,
                    database=os.environ.get("RAW_PG_DATABASE", "mwplu"),
                    min_size=size,
                    max_size=size,
                    setup=None,
                    init=_setup,
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


app = RawApp()
