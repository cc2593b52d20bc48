"""The data set of ``python -m bench.graph``: generated in Python, loaded with COPY.

Deterministic (seeded) and streamed: each table's rows come from a generator that
``copy_records_to_table`` consumes while Postgres ingests them, so the Python side and the
server work at the same time and nothing big is held in memory. Row ids are derived from the
table and the row number (``row_id``), so related tables need no lookup lists.

Shape, for ``conversations`` = N and ``messages`` = M:

- 200 users (one admin), 40 cities with one zoning and 5 zones each, 4 typologies,
  400 documents (city, zoning, zone, typology);
- N/4 v2 projects with a main city and zone; N v2 conversations (title, project, 0-2 linked
  documents) with M messages each (roles user/assistant, a system message on every fifth
  conversation, reply chains, assistant messages referring to a document, zone and city);
- N v1 conversations (two thirds with a document) with M messages each (reply chains);
- ``events`` analytics events over 90 days, half v1 and half v2, 3 models.

v1 conversation ``i`` is last active at ``BASE + 2i`` minutes, v2 conversation ``i`` one
minute later, so both stores interleave in the unified listing; every ``last_message_at`` is
distinct and none is NULL (so orderings agree across servers without tie-breaking subtleties).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

BASE = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
MASK = (1 << 128) - 1
MIX = 0x9E3779B97F4A7C15F39CC0605CEDC835  # odd: i -> i * MIX is a bijection mod 2**128

USERS = 200
CITIES = 40
ZONES_PER_CITY = 5
TYPOLOGIES = 4
DOCUMENTS = 400
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet")
EVENT_DAYS = 90

QUESTION = (
    "Bonjour, je prépare un projet d'extension de ma maison individuelle. Quelle est la "
    "hauteur maximale autorisée en zone UB, faut-il respecter un retrait par rapport à la "
    "limite séparative, et quelles règles s'appliquent aux toitures et aux clôtures ? "
    "Question n°"
)
ANSWER = (
    "D'après l'article UB 10 du règlement, la hauteur est limitée à 12 mètres à l'égout du "
    "toit ; l'article UB 7 impose un retrait au moins égal à la moitié de la hauteur, sans "
    "être inférieur à 3 mètres. Les clôtures sur rue ne dépassent pas 1,80 m. Réponse n°"
)
SYSTEM = "Vous êtes l'assistant PLU de MWPLU : répondez à partir des documents fournis."

# Table numbers for row_id (any distinct small integers).
T_USER, T_CITY, T_ZONING, T_ZONE, T_TYPOLOGY, T_DOCUMENT = 1, 2, 3, 4, 5, 6
T_PROJECT, T_V2_CONV, T_V2_MSG, T_V2_LINK, T_V1_CONV, T_V1_MSG, T_EVENT = 7, 8, 9, 10, 11, 12, 13


def row_id(table: int, n: int) -> uuid.UUID:
    """A deterministic, well-spread uuid for row ``n`` of ``table``."""
    return uuid.UUID(int=(((n + 1) * MIX) ^ (table << 120)) & MASK)


@dataclass(frozen=True)
class Scale:
    conversations: int = 20_000  # per store
    messages: int = 10  # per conversation
    events: int = 1_000_000

    @property
    def projects(self) -> int:
        return max(1, self.conversations // 4)


def v1_last(i: int, scale: Scale) -> datetime:
    return BASE + timedelta(minutes=2 * i, seconds=max(scale.messages - 1, 0))


def v2_last(i: int, scale: Scale) -> datetime:
    return BASE + timedelta(minutes=2 * i + 1, seconds=max(scale.messages - 1, 0))


def _reference() -> dict[str, list[tuple[Any, ...]]]:
    users = [row_id(T_USER, u) for u in range(USERS)]
    cities = [
        (row_id(T_CITY, c), f"Commune {c:02d}", f"{69000 + c * 7:05d}") for c in range(CITIES)
    ]
    zonings = [(row_id(T_ZONING, c), cities[c][0], "PLU") for c in range(CITIES)]
    zones = []
    for c in range(CITIES):
        for z in range(ZONES_PER_CITY):
            code = ("UA", "UB", "UC", "AU", "N")[z]
            zones.append((
                row_id(T_ZONE, c * ZONES_PER_CITY + z), zonings[c][0], cities[c][0], code,
                f"Zone {code} de la commune {c:02d}",
            ))
    typologies = [(row_id(T_TYPOLOGY, t), f"Typologie {t}") for t in range(TYPOLOGIES)]
    documents = []
    for d in range(DOCUMENTS):
        c, z = d % CITIES, d % ZONES_PER_CITY
        documents.append((
            row_id(T_DOCUMENT, d), f"Règlement {d:03d} — zone {zones[c * ZONES_PER_CITY + z][3]}",
            f"https://docs.example/plu/{d}.pdf", cities[c][0], zonings[c][0],
            zones[c * ZONES_PER_CITY + z][0], typologies[d % TYPOLOGIES][0], BASE,
        ))
    return {
        "auth.users": [(u, f"user{i}@example.fr") for i, u in enumerate(users)],
        "profiles": [
            (u, f"user{i}@example.fr", f"Utilisateur {i}", i == 0, BASE)
            for i, u in enumerate(users)
        ],
        "cities": cities,
        "zonings": zonings,
        "zones": zones,
        "typologies": typologies,
        "documents": documents,
    }


def _projects(scale: Scale) -> Iterator[tuple[Any, ...]]:
    types = ("construction", "extension", "renovation", "amenagement", "lotissement", "other")
    for p in range(scale.projects):
        c = p % CITIES
        yield (
            row_id(T_PROJECT, p), row_id(T_USER, p % USERS), f"Projet {p}",
            "Extension d'une maison individuelle", types[p % len(types)],
            f"{p % 200 + 1} rue de la République", row_id(T_CITY, c),
            row_id(T_ZONE, c * ZONES_PER_CITY + p % ZONES_PER_CITY), "active" if p % 3 else "draft",
            BASE - timedelta(days=30), BASE - timedelta(days=30), '{"source": "bench"}',
        )


def _v2_link_count(i: int) -> int:
    return i % 3  # 0, 1 or 2 documents


def _v2_conversations(scale: Scale) -> Iterator[tuple[Any, ...]]:
    for i in range(scale.conversations):
        p = i % scale.projects
        start = BASE + timedelta(minutes=2 * i + 1)
        yield (
            row_id(T_V2_CONV, i), row_id(T_USER, p % USERS), row_id(T_PROJECT, p),
            "address_analysis", f"Hauteur maximale et retraits — dossier {i}",
            '{"channel": "web"}', True, v2_last(i, scale), scale.messages, _v2_link_count(i),
            start, v2_last(i, scale),
        )


def _v2_links(scale: Scale) -> Iterator[tuple[Any, ...]]:
    n = 0
    for i in range(scale.conversations):
        for k in range(_v2_link_count(i)):
            yield (
                row_id(T_V2_LINK, n), row_id(T_V2_CONV, i), row_id(T_DOCUMENT, (i + k) % DOCUMENTS),
                BASE + timedelta(minutes=2 * i + 1), "user", Decimal("0.80"),
            )
            n += 1


def _role(i: int, j: int) -> str:
    if j == 0 and i % 5 == 0:
        return "system"
    return "user" if j % 2 == 0 else "assistant"


def _v2_messages(scale: Scale) -> Iterator[tuple[Any, ...]]:
    m_count = scale.messages
    assistant_meta = json.dumps({"model": "gpt-4o-mini", "tokens": 420})
    search = json.dumps({"query": "hauteur UB", "results": 3})
    score = Decimal("0.92")
    for i in range(scale.conversations):
        p = i % scale.projects
        owner = row_id(T_USER, p % USERS)
        conversation = row_id(T_V2_CONV, i)
        start = BASE + timedelta(minutes=2 * i + 1)
        c = p % CITIES
        document = [row_id(T_DOCUMENT, i % DOCUMENTS)]
        zone = [row_id(T_ZONE, c * ZONES_PER_CITY + p % ZONES_PER_CITY)]
        city = [row_id(T_CITY, c)]
        previous = None
        base = i * m_count
        for j in range(m_count):
            role = _role(i, j)
            mid = row_id(T_V2_MSG, base + j)
            if role == "assistant":
                yield (
                    mid, conversation, owner, role, f"{ANSWER}{base + j}", "text", document, zone,
                    city, search, "regulation_question", score, "gpt-4o-mini", j // 2 + 1,
                    previous, assistant_meta, start + timedelta(seconds=j),
                )
            else:
                text = SYSTEM if role == "system" else f"{QUESTION}{base + j}"
                yield (
                    mid, conversation, owner, role, text, "text", None, None, None, None, None,
                    None, None, j // 2 + 1, previous, None, start + timedelta(seconds=j),
                )
            previous = mid


def _v1_conversations(scale: Scale) -> Iterator[tuple[Any, ...]]:
    for i in range(scale.conversations):
        document = row_id(T_DOCUMENT, i % DOCUMENTS) if i % 3 else None
        last = v1_last(i, scale) if scale.messages else BASE + timedelta(minutes=2 * i)
        yield (
            row_id(T_V1_CONV, i), row_id(T_USER, i % USERS), document, True, last,
            BASE + timedelta(minutes=2 * i),
        )


def _v1_messages(scale: Scale) -> Iterator[tuple[Any, ...]]:
    m_count = scale.messages
    meta = json.dumps({"model": "gpt-4o-mini", "tokens": 380})
    for i in range(scale.conversations):
        owner = row_id(T_USER, i % USERS)
        conversation = row_id(T_V1_CONV, i)
        document = row_id(T_DOCUMENT, i % DOCUMENTS) if i % 3 else None
        start = BASE + timedelta(minutes=2 * i)
        previous = None
        base = i * m_count
        for j in range(m_count):
            role = _role(i, j)
            mid = row_id(T_V1_MSG, base + j)
            text = (
                SYSTEM if role == "system"
                else f"{QUESTION if role == 'user' else ANSWER}{base + j}"
            )
            yield (
                mid, conversation, owner, role, text, document if j == 1 else None, j // 2 + 1,
                previous, meta if role == "assistant" else None, start + timedelta(seconds=j),
            )
            previous = mid


def _events(scale: Scale, seed: int = 11) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    rand = rng.random
    randrange = rng.randrange
    sources = ('{"source": "v1"}', '{"source": "v2"}')
    costs = [Decimal(f"0.{k:04d}") for k in range(1, 200)]
    start = BASE - timedelta(days=EVENT_DAYS)
    span = EVENT_DAYS * 86400
    n_conv = max(scale.conversations, 1)
    n_msg = max(scale.conversations * scale.messages, 1)
    for e in range(scale.events):
        v2 = e & 1
        c = randrange(n_conv)
        yield (
            row_id(T_EVENT, e),
            row_id(T_V2_CONV if v2 else T_V1_CONV, c),
            row_id(T_V2_MSG if v2 else T_V1_MSG, randrange(n_msg)),
            row_id(T_DOCUMENT, c % DOCUMENTS) if c % 3 else None,
            row_id(T_USER, c % USERS),
            MODELS[e % 3],
            200 + randrange(1800),
            costs[randrange(len(costs))],
            sources[v2],
            start + timedelta(seconds=rand() * span),
        )


# table -> (columns, rows factory)
COLUMNS: dict[str, tuple[str, ...]] = {
    "auth.users": ("id", "email"),
    "profiles": ("id", "email", "full_name", "is_admin", "created_at"),
    "cities": ("id", "name", "insee_code"),
    "zonings": ("id", "city_id", "name"),
    "zones": ("id", "zoning_id", "city_id", "code", "label"),
    "typologies": ("id", "name"),
    "documents": ("id", "title", "url", "city_id", "zoning_id", "zone_id", "typology_id",
                  "created_at"),
    "v2_projects": ("id", "user_id", "name", "description", "project_type", "main_address",
                    "main_city_id", "main_zone_id", "status", "created_at", "updated_at",
                    "metadata"),
    "v2_conversations": ("id", "user_id", "project_id", "conversation_type", "title",
                         "context_metadata", "is_active", "last_message_at", "message_count",
                         "document_count", "created_at", "updated_at"),
    "v2_conversation_documents": ("id", "conversation_id", "document_id", "added_at", "added_by",
                                  "relevance_score"),
    "v2_messages": ("id", "conversation_id", "user_id", "role", "message", "message_type",
                    "referenced_documents", "referenced_zones", "referenced_cities",
                    "search_context", "intent_detected", "confidence_score", "ai_model_used",
                    "conversation_turn", "reply_to_message_id", "metadata", "created_at"),
    "chat_conversations": ("id", "user_id", "document_id", "is_active", "last_message_at",
                           "created_at"),
    "chat_messages": ("id", "conversation_id", "user_id", "role", "message", "document_id",
                      "conversation_turn", "reply_to_message_id", "metadata", "created_at"),
    "analytics.chat_events": ("id", "conversation_id", "message_id", "document_id", "user_id",
                              "model_name", "tokens_total", "cost_total", "metadata",
                              "created_at"),
}


def _split(table: str) -> tuple[str, str]:
    schema, _, name = table.rpartition(".")
    return schema or "public", name


async def load(conn: asyncpg.Connection, scale: Scale) -> dict[str, tuple[int, float]]:
    """Load every table; returns ``{table: (rows, seconds)}``.

    Secondary indexes are dropped before COPY and rebuilt after (the same definitions, read
    from ``pg_indexes``), and foreign-key triggers are off during the load (the data is
    consistent by construction): both are the usual bulk-load practice and several times
    faster than maintaining them row by row. All in one transaction: a load that fails
    changes nothing.
    """
    reference = _reference()
    sources: dict[str, Any] = {
        **reference,
        "v2_projects": lambda: _projects(scale),
        "v2_conversations": lambda: _v2_conversations(scale),
        "v2_conversation_documents": lambda: _v2_links(scale),
        "v2_messages": lambda: _v2_messages(scale),
        "chat_conversations": lambda: _v1_conversations(scale),
        "chat_messages": lambda: _v1_messages(scale),
        "analytics.chat_events": lambda: _events(scale),
    }
    timings: dict[str, tuple[int, float]] = {}
    indexes = await conn.fetch(
        """
        SELECT i.schemaname, i.indexname, i.indexdef FROM pg_indexes i
        JOIN pg_class c ON c.relname = i.indexname
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = i.schemaname
        WHERE i.schemaname || '.' || i.tablename = ANY($1::text[])
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)
        """,
        [".".join(_split(t)) for t in COLUMNS],
    )
    # One transaction: a load that fails (say, into a database already loaded) leaves the
    # indexes it dropped in place, not a database that answers every benchmark by
    # sequential scans.
    await conn.execute("SET maintenance_work_mem = '256MB'")  # the rebuild, and VACUUM
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        for row in indexes:
            await conn.execute(f'DROP INDEX "{row["schemaname"]}"."{row["indexname"]}"')
        for table, columns in COLUMNS.items():
            schema, name = _split(table)
            source = sources[table]
            records = source() if callable(source) else source
            began = time.perf_counter()
            status = await conn.copy_records_to_table(
                name, records=records, columns=columns, schema_name=schema
            )
            timings[table] = (int(status.split()[-1]), time.perf_counter() - began)
        began = time.perf_counter()
        for row in indexes:
            await conn.execute(row["indexdef"])
        timings["(secondary indexes)"] = (len(indexes), time.perf_counter() - began)
    began = time.perf_counter()
    await conn.execute("VACUUM ANALYZE")
    await conn.execute("CHECKPOINT")
    timings["(vacuum analyze)"] = (0, time.perf_counter() - began)
    return timings
