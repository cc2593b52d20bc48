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
"""

from __future__ import annotations

import base64
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from uuid import UUID

import asyncpg  # type: ignore[import-untyped]
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
HEADERS = [(b"content-type", b"application/json")]


def decode_global_id(value: str) -> tuple[str, UUID]:
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    type_name, _, row_id = raw.partition(":")
    return type_name, UUID(row_id)


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
