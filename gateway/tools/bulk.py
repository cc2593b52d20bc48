"""Bulk migration of v1 conversations into v2 (``mwplu-gateway migrate-conversations``).

Selection: the v1 conversations whose ``migration_tracking`` row is not ``completed`` (never
migrated, failed, reverted), optionally one user's, optionally created before a date (midnight
UTC), paged by id with a keyset cursor. A rerun therefore resumes: completed conversations are
never selected again.

Each batch is one transaction run as ``service_role`` and two statements:

1. **Claim** the batch's tracking rows: ``INSERT … ON CONFLICT (v1_conversation_id) DO UPDATE
   … WHERE status IS DISTINCT FROM 'completed' RETURNING``. A row another transaction holds
   (the GraphQL mutation's claim, a concurrent bulk run) makes this statement wait for that
   transaction; a row it completed meanwhile is not returned, so it is skipped, never copied
   twice. Rows are claimed in id order, so two runs lock in the same order and cannot deadlock.
2. **Copy** the claimed conversations set-based in a single statement whose data-modifying CTEs
   insert the projects, conversations, messages and document links and complete the tracking
   rows. The ids of the new projects and conversations are drawn in Python; the old→new message
   id map is one materialised CTE that the message insert joins to itself to remap reply
   chains. One statement means one snapshot: ``message_count``, ``last_message_at`` and the
   title are computed from exactly the messages copied, even while the v1 application writes
   (separate statements under READ COMMITTED could count a message they do not copy).

The rows written are the ones ``gateway.store.migration`` writes for one conversation (the
project's ``metadata.migration_id`` is the tracking id, so ``revertMigration`` works on bulk
copies), with one refinement: the new message ids are sorted within each conversation in v1's
``(created_at, id)`` order, so messages with equal timestamps keep their order in v2, which
sorts by ``(created_at, id)`` as well.

When a batch fails, it is retried by halves (bisection), each half again one set-based
transaction, down to single conversations: those are retried one by one, each in its own
transaction (``gateway.store.migration.claim``, the mutation's claim, then the copy above for
a batch of one, so that every bulk copy is made by the same SQL: ``store.migration.copy``
draws message ids at random and would not keep the order of equal timestamps). A conversation
that still fails is recorded as ``failed`` with its ``error_message`` in a separate committed
transaction, and the run goes on.
Losing the database connection stops the run (nothing half-done is committed).

Nothing here writes to ``analytics.chat_events``: migrated messages are not new chat activity,
so no event changes source.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import Db, Viewer, create_engine, viewer_transaction
from gateway.db.failures import unavailable
from gateway.settings import Settings
from gateway.store import migration as single
from gateway.store.chat_writes import conversation_owner
from gateway.store.verify import VerificationReport, verify
from gateway.tools.bulk_failures import describe, sqlstate

# A batch statement may legitimately run longer than an API request.
BULK_STATEMENT_TIMEOUT_MS = 10 * 60 * 1000
BULK_COMMAND_TIMEOUT_S = 15 * 60.0
TRANSIENT_SQLSTATES = ("40001", "40P01")  # serialization failure, deadlock
SINGLE_ATTEMPTS = 3
ZERO = UUID(int=0)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Failure:
    v1_conversation_id: UUID
    error: str


@dataclass(frozen=True)
class BulkSummary:
    """What a run did.

    ``selected``: conversations the run set out to migrate (not completed when selected);
    ``migrated + skipped + failed == selected`` for a run that finished. ``skipped``: selected
    conversations found completed (by a concurrent run or mutation) when claimed, or deleted
    from v1 meanwhile. ``already_completed``: conversations in scope that an earlier run had
    completed (not selected). ``messages``: messages copied (to be copied, in a dry run).
    """

    selected: int
    migrated: int
    skipped: int
    failed: int
    messages: int
    seconds: float
    already_completed: int = 0
    dry_run: bool = False
    batches: int = 0
    batches_retried: int = 0
    failures: tuple[Failure, ...] = ()

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


# --- selection ------------------------------------------------------------------------------


def _scope(user_id: UUID | None, before: date | None) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if user_id is not None:
        clauses.append("c.user_id = :user_id")
        params["user_id"] = user_id
    if before is not None:
        clauses.append("c.created_at < :before")
        params["before"] = datetime(before.year, before.month, before.day, tzinfo=UTC)
    return " AND ".join(clauses) or "true", params


NOT_COMPLETED = (
    "NOT EXISTS (SELECT 1 FROM migration_tracking t WHERE t.v1_conversation_id = c.id "
    "AND t.migration_status = 'completed')"
)


def _count_sql(scope: str) -> str:
    return (
        "SELECT count(*) FILTER (WHERE t.migration_status IS DISTINCT FROM 'completed') "
        "AS selected, count(*) FILTER (WHERE t.migration_status = 'completed') AS completed "
        "FROM chat_conversations c "
        "LEFT JOIN migration_tracking t ON t.v1_conversation_id = c.id "
        f"WHERE {scope}"
    )


def _messages_sql(scope: str) -> str:
    return (
        "SELECT count(*) FROM chat_conversations c JOIN chat_messages m "
        f"ON m.conversation_id = c.id WHERE {scope} AND {NOT_COMPLETED}"
    )


def _page_sql(scope: str) -> str:
    return (
        f"SELECT c.id FROM chat_conversations c WHERE c.id > :after AND {scope} "
        f"AND {NOT_COMPLETED} ORDER BY c.id LIMIT :limit"
    )


# --- the batch ------------------------------------------------------------------------------

CLAIM = text(
    """
    INSERT INTO migration_tracking (v1_conversation_id, migration_status, migrated_at)
    SELECT c.id, 'pending', now() FROM chat_conversations c
    WHERE c.id = ANY(CAST(:ids AS uuid[]))
    ORDER BY c.id
    ON CONFLICT (v1_conversation_id) DO UPDATE
      SET migration_status = 'pending', error_message = NULL
      WHERE migration_tracking.migration_status IS DISTINCT FROM 'completed'
    RETURNING id, v1_conversation_id
    """
)

MARK_FAILED = text(
    """
    INSERT INTO migration_tracking (v1_conversation_id, migration_status, error_message,
      migrated_at)
    SELECT c.id, 'failed', :error, now() FROM chat_conversations c WHERE c.id = :v1
    ON CONFLICT (v1_conversation_id) DO UPDATE
      SET migration_status = 'failed', error_message = EXCLUDED.error_message,
          migrated_at = EXCLUDED.migrated_at
      WHERE migration_tracking.migration_status IS DISTINCT FROM 'completed'
    """
)


@dataclass
class _Run:
    engine: AsyncEngine
    settings: Settings
    scope: str
    params: dict[str, Any]
    batch_size: int
    total: int
    progress: Progress | None
    after: UUID = ZERO
    exhausted: bool = False
    migrated: int = 0
    skipped: int = 0
    failed: int = 0
    messages: int = 0
    batches: int = 0
    batches_retried: int = 0
    failures: list[Failure] = field(default_factory=list)
    page_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def transaction(self) -> Any:
        return viewer_transaction(self.engine, Viewer.service(), self.settings)

    @property
    def done(self) -> int:
        return self.migrated + self.skipped + self.failed

    def report(self) -> None:
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done))

    async def next_batch(self) -> list[UUID]:
        """The next page of candidates; pages never overlap (one pager at a time)."""
        async with self.page_lock:
            if self.exhausted:
                return []
            async with self.transaction() as db:
                rows = await db.execute(
                    text(_page_sql(self.scope)),
                    {**self.params, "after": self.after, "limit": self.batch_size},
                )
                ids = [row[0] for row in rows]
            if len(ids) < self.batch_size:
                self.exhausted = True
            if ids:
                self.after = ids[-1]
            return ids

    async def worker(self) -> None:
        while ids := await self.next_batch():
            await self.migrate_batch(ids)
            self.report()

    async def migrate_batch(self, ids: Sequence[UUID]) -> None:
        self.batches += 1
        if not await self.try_batch(ids):
            self.batches_retried += 1
            await self.bisect(ids)

    async def try_batch(self, ids: Sequence[UUID]) -> bool:
        """Claim and copy ``ids`` in one transaction; False (rolled back) when it failed."""
        try:
            async with self.transaction() as db:
                claimed = [(r[0], r[1]) for r in await db.execute(CLAIM, {"ids": list(ids)})]
                conversations, messages = await single.copy_claimed(db, claimed)
        except Exception as exc:
            if unavailable(exc):
                raise
            return False
        self.migrated += conversations
        self.skipped += len(ids) - conversations
        self.messages += messages
        return True

    async def bisect(self, ids: Sequence[UUID]) -> None:
        """Retry a failed batch by halves, so that the conversations around a bad one are still
        copied set-based; a conversation left alone is retried by itself and, if it fails
        again, recorded. A batch with one bad conversation costs about 2·log2(n) extra
        transactions instead of n."""
        middle = len(ids) // 2
        for half in (ids[:middle], ids[middle:]):
            if len(half) == 1:
                await self.migrate_single(half[0])
            elif half and not await self.try_batch(half):
                await self.bisect(half)

    async def migrate_single(self, v1_id: UUID) -> None:
        for attempt in range(1, SINGLE_ATTEMPTS + 1):
            try:
                outcome, messages = await self._copy_one(v1_id)
            except Exception as exc:
                if unavailable(exc):
                    raise
                if sqlstate(exc) in TRANSIENT_SQLSTATES and attempt < SINGLE_ATTEMPTS:
                    continue
                await self.record_failure(v1_id, describe(exc))
                return
            if outcome == "migrated":
                self.migrated += 1
                self.messages += messages
            else:
                self.skipped += 1
            return

    async def _copy_one(self, v1_id: UUID) -> tuple[str, int]:
        async with self.transaction() as db:
            if await conversation_owner(db, "v1", v1_id) is None:
                return "skipped", 0  # deleted from v1 since it was selected
            claimed = await single.claim(db, v1_id)
            if claimed is None or claimed.already_migrated:
                return "skipped", 0
            _, messages = await single.copy_claimed(db, [(claimed.tracking["id"], v1_id)])
            return "migrated", messages

    async def record_failure(self, v1_id: UUID, error: str) -> None:
        self.failed += 1
        self.failures.append(Failure(v1_id, error))
        async with self.transaction() as db:
            await db.execute(MARK_FAILED, {"v1": v1_id, "error": error})


def bulk_settings(settings: Settings | None) -> Settings:
    base = settings or Settings()
    return replace(
        base,
        statement_timeout_service_ms=max(
            base.statement_timeout_service_ms, BULK_STATEMENT_TIMEOUT_MS
        ),
        command_timeout_s=max(base.command_timeout_s, BULK_COMMAND_TIMEOUT_S),
    )


async def _counts(db: Db, scope: str, params: dict[str, Any]) -> tuple[int, int]:
    row = (await db.execute(text(_count_sql(scope)), params)).mappings().one()
    return int(row["selected"]), int(row["completed"])


async def migrate_conversations(
    url: str,
    *,
    user_id: UUID | None,
    before: date | None,
    batch_size: int,
    concurrency: int,
    dry_run: bool,
    progress: Progress | None,
    settings: Settings | None = None,
) -> BulkSummary:
    """Migrate every selected v1 conversation (see the module docstring).

    ``url`` is a database URL whose user may act as ``service_role`` (the owner's, or the
    ``authenticator``'s); ``concurrency`` batches are in flight at once, each on its own pooled
    connection. ``progress(done, total)`` is called after each batch.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    began = time.perf_counter()
    settings = bulk_settings(settings)
    scope, params = _scope(user_id, before)
    engine = create_engine(url, settings, pool_size=concurrency + 1)
    try:
        async with viewer_transaction(engine, Viewer.service(), settings) as db:
            selected, completed = await _counts(db, scope, params)
            to_copy = (
                int(await db.scalar(text(_messages_sql(scope)), params) or 0) if dry_run else 0
            )
        if dry_run:
            return BulkSummary(
                selected=selected, migrated=0, skipped=0, failed=0, messages=to_copy,
                seconds=time.perf_counter() - began, already_completed=completed, dry_run=True,
            )
        run = _Run(engine, settings, scope, params, batch_size, selected, progress)
        run.report()
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(concurrency):
                    group.create_task(run.worker())
        except BaseExceptionGroup as failed:  # the first worker's fatal error, as itself
            raise failed.exceptions[0] from None
        return BulkSummary(
            selected=max(selected, run.done),
            migrated=run.migrated,
            skipped=run.skipped,
            failed=run.failed,
            messages=run.messages,
            seconds=time.perf_counter() - began,
            already_completed=completed,
            batches=run.batches,
            batches_retried=run.batches_retried,
            failures=tuple(run.failures),
        )
    finally:
        await engine.dispose()


# Fresh statistics keep the verification's whole-table joins on hash plans right after a bulk
# run; a login that does not own the tables gets a warning from PostgreSQL and skips them.
ANALYZE = text(
    "ANALYZE migration_tracking, v2_conversations, v2_messages, v2_conversation_documents"
)
# The verification sorts every migrated message twice: let it do so in memory.
VERIFY_WORK_MEM = text("SELECT set_config('work_mem', '256MB', true)")


async def verify_migrations(url: str, *, settings: Settings | None = None) -> VerificationReport:
    """``gateway.store.verify.verify`` over every migration, as ``service_role``."""
    settings = bulk_settings(settings)
    engine = create_engine(url, settings, pool_size=1)
    try:
        async with engine.connect() as conn, conn.begin():
            await conn.execute(ANALYZE)
        async with viewer_transaction(engine, Viewer.service(), settings) as db:
            await db.execute(VERIFY_WORK_MEM)
            return await verify(db)
    finally:
        await engine.dispose()
