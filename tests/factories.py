"""Row factories for tests: ``make_<thing>(conn, **overrides)`` insert as the owner and return
the new row's id."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

BASE = datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return BASE + timedelta(minutes=minutes)


async def insert(conn: asyncpg.Connection, table: str, **values: Any) -> uuid.UUID:
    values.setdefault("id", uuid.uuid4())
    columns = list(values)
    args = [json.dumps(v) if isinstance(v, dict) else v for v in values.values()]
    placeholders = ", ".join(f"${i + 1}" for i in range(len(columns)))
    await conn.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", *args
    )
    return values["id"]  # type: ignore[no-any-return]


async def make_user(
    conn: asyncpg.Connection, full_name: str = "Camille Martin", *, is_admin: bool = False
) -> uuid.UUID:
    user_id = uuid.uuid4()
    email = f"{full_name.lower().replace(' ', '.')}.{user_id.hex[:6]}@example.fr"
    await insert(conn, "auth.users", id=user_id, email=email)
    await insert(conn, "profiles", id=user_id, email=email, full_name=full_name, is_admin=is_admin)
    return user_id


async def make_city(
    conn: asyncpg.Connection, name: str = "Lyon", insee: str = "69123"
) -> uuid.UUID:
    return await insert(conn, "cities", name=name, insee_code=insee)


async def make_zone(conn: asyncpg.Connection, city_id: uuid.UUID, code: str = "UB") -> uuid.UUID:
    zoning = await insert(conn, "zonings", city_id=city_id, name="PLU")
    return await insert(
        conn, "zones", zoning_id=zoning, city_id=city_id, code=code, label=f"Zone {code}"
    )


async def make_document(
    conn: asyncpg.Connection, title: str = "Règlement UB", **values: Any
) -> uuid.UUID:
    return await insert(conn, "documents", title=title, url="https://docs.example/x.pdf", **values)


async def make_v1_conversation(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    last: float | None = 0,
    document_id: uuid.UUID | None = None,
    messages: int = 0,
    **values: Any,
) -> uuid.UUID:
    """A v1 conversation whose last activity is ``at(last)``; ``messages`` alternate
    user/assistant, each replying to the previous one."""
    last_at = at(last) if last is not None else None
    cid = await insert(
        conn,
        "chat_conversations",
        user_id=user_id,
        document_id=document_id,
        last_message_at=last_at,
        created_at=at(-1000),
        **values,
    )
    previous = None
    for i in range(messages):
        previous = await insert(
            conn,
            "chat_messages",
            conversation_id=cid,
            user_id=user_id,
            role="user" if i % 2 == 0 else "assistant",
            message=f"v1 message {i}",
            conversation_turn=i // 2 + 1,
            reply_to_message_id=previous,
            document_id=document_id if i == 1 else None,
            created_at=at(-900 + i),
        )
    return cid


async def make_project(conn: asyncpg.Connection, user_id: uuid.UUID, **values: Any) -> uuid.UUID:
    return await insert(conn, "v2_projects", user_id=user_id, **values)


async def make_v2_conversation(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    project_id: uuid.UUID | None = None,
    last: float | None = 0,
    messages: int = 0,
    document_ids: tuple[uuid.UUID, ...] = (),
    **values: Any,
) -> uuid.UUID:
    if project_id is None:
        project_id = await make_project(conn, user_id, name="Projet")
    cid = await insert(
        conn,
        "v2_conversations",
        user_id=user_id,
        project_id=project_id,
        title=values.pop("title", "Hauteur maximale"),
        last_message_at=at(last) if last is not None else None,
        created_at=at(-1000),
        message_count=messages,
        document_count=len(document_ids),
        **values,
    )
    for doc in document_ids:
        await insert(
            conn, "v2_conversation_documents", conversation_id=cid, document_id=doc, added_by="user"
        )
    previous = None
    for i in range(messages):
        previous = await insert(
            conn,
            "v2_messages",
            conversation_id=cid,
            user_id=user_id,
            role="user" if i % 2 == 0 else "assistant",
            message=f"v2 message {i}",
            conversation_turn=i // 2 + 1,
            reply_to_message_id=previous,
            referenced_documents=list(document_ids[:1]) if i == 1 else None,
            created_at=at(-900 + i),
        )
    return cid


async def make_event(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    source: str,
    minutes: float = 0,
    model: str = "gpt-4o-mini",
    tokens: int = 100,
    cost: str = "0.0100",
) -> uuid.UUID:
    from decimal import Decimal

    return await insert(
        conn,
        "analytics.chat_events",
        user_id=user_id,
        model_name=model,
        tokens_total=tokens,
        cost_total=Decimal(cost),
        metadata={"source": source},
        created_at=at(minutes),
    )
