"""``migrate-conversations`` and ``verify-migrations``: bulk migration from v1 to v2."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from gateway.db import migrate
from gateway.tools.cli.common import DataDir, app, database, fail, load_settings, out, run_db


def _bulk_scope(all_: bool, user: str | None, before: str | None) -> tuple[Any, Any]:
    import uuid
    from datetime import date

    if not all_ and user is None:
        fail("choose the conversations: one of --all or --user UUID")
    if all_ and user is not None:
        fail("--all and --user are exclusive: give one, not both")
    try:
        user_id = uuid.UUID(user) if user is not None else None
    except ValueError:
        fail(f"--user must be a UUID, got {user!r}")
    try:
        day = date.fromisoformat(before) if before is not None else None
    except ValueError:
        fail(f"--before must be a date (YYYY-MM-DD), got {before!r}")
    return user_id, day


def _progress_bar() -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            rate = f"{speed:,.0f} conv/s" if speed else "- conv/s"
            return Text(rate, style="progress.data.speed")

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=out,
    )


@app.command("migrate-conversations")
def migrate_conversations(
    all_: Annotated[bool, typer.Option("--all", help="Every user's v1 conversations.")] = False,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's (UUID).")] = None,
    before: Annotated[
        str | None,
        typer.Option("--before", help="Only those created before DATE (YYYY-MM-DD, UTC)."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Conversations per transaction.")
    ] = 500,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be migrated.")
    ] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Batches in flight.")] = 2,
    data_dir: DataDir = None,
) -> None:
    """Copy v1 conversations into v2 in batches (resumable: completed ones are skipped)."""
    from gateway.tools import bulk

    user_id, day = _bulk_scope(all_, user, before)
    if not 1 <= batch_size <= 50_000:
        fail(f"--batch-size must be between 1 and 50000, got {batch_size}")
    if not 1 <= concurrency <= 32:
        fail(f"--concurrency must be between 1 and 32, got {concurrency}")
    settings = load_settings(data_dir)
    with database(settings) as (serving, owner_url):
        if settings.embedded:
            run_db(migrate.upgrade, owner_url, "head", settings.authenticator_password)
        options: dict[str, Any] = {
            "user_id": user_id, "before": day, "batch_size": batch_size,
            "concurrency": concurrency, "dry_run": dry_run, "settings": serving,
        }
        if dry_run:
            summary = run_db(
                asyncio.run, bulk.migrate_conversations(owner_url, progress=None, **options)
            )
        else:
            with _progress_bar() as bar:
                task = bar.add_task("migrating", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                summary = run_db(
                    asyncio.run, bulk.migrate_conversations(owner_url, progress=progress, **options)
                )
    _print_bulk_summary(summary)
    if summary.failed:
        fail(
            f"{summary.failed} conversation(s) failed (status 'failed' with error_message in "
            "migration_tracking); run the command again to retry them"
        )


def _print_bulk_summary(summary: Any) -> None:
    from rich.table import Table

    table = Table(title="dry run: nothing written" if summary.dry_run else "bulk migration")
    table.add_column("", style="bold")
    table.add_column("count", justify="right")
    if summary.dry_run:
        rows = [
            ("to migrate", summary.selected),
            ("messages to copy", summary.messages),
            ("already completed", summary.already_completed),
        ]
    else:
        rows = [
            ("selected", summary.selected),
            ("migrated", summary.migrated),
            ("skipped (completed meanwhile)", summary.skipped),
            ("failed", summary.failed),
            ("already completed before", summary.already_completed),
            ("messages copied", summary.messages),
            ("batches (retried one by one)", f"{summary.batches} ({summary.batches_retried})"),
        ]
    for label, value in rows:
        table.add_row(label, f"{value:,}" if isinstance(value, int) else value)
    out.print(table)
    if not summary.dry_run:
        rate = f"{summary.messages_per_second:,.0f} messages/s"
        out.print(f"{summary.seconds:.1f}s, {rate}", highlight=False)
    for failure in summary.failures[:10]:
        out.print(f"[red]failed[/] {failure.v1_conversation_id}: {failure.error}", soft_wrap=True,
                  highlight=False)
    if len(summary.failures) > 10:
        out.print(f"… and {len(summary.failures) - 10} more", highlight=False)


@app.command("verify-migrations")
def verify_migrations(
    limit: Annotated[int, typer.Option("--limit", help="Problems listed (all are counted).")] = 50,
    data_dir: DataDir = None,
) -> None:
    """Check parity between migrated v1 conversations and their v2 copies (exit 1 on problems)."""
    from rich.table import Table

    from gateway.store.verify import KINDS
    from gateway.tools import bulk

    if limit < 0:
        fail(f"--limit must be 0 or more, got {limit}")
    settings = load_settings(data_dir)
    with database(settings) as (serving, owner_url):
        report = run_db(asyncio.run, bulk.verify_migrations(owner_url, settings=serving))
    statuses = Table(title="migrations")
    statuses.add_column("status", style="bold")
    statuses.add_column("count", justify="right")
    for status, count in report.statuses.items():
        statuses.add_row(status, f"{count:,}")
    statuses.add_row("v1 not migrated", f"{report.not_migrated:,}")
    out.print(statuses)
    if report.failed:
        failed = Table(title=f"failed migrations ({len(report.failed)})")
        failed.add_column("v1 conversation", no_wrap=True, min_width=36)
        failed.add_column("error", overflow="fold")
        for problem in report.failed[:limit]:
            failed.add_row(str(problem.v1_conversation_id), problem.detail)
        out.print(failed)
    if report.ok:
        out.print(f"parity: ok ({report.checked:,} completed migrations checked)", highlight=False)
        return
    kinds = Table(title="parity problems")
    kinds.add_column("kind", style="bold")
    kinds.add_column("conversations", justify="right")
    kinds.add_column("meaning")
    for kind, count in report.kinds.items():
        kinds.add_row(kind, f"{count:,}", KINDS.get(kind, ""))
    out.print(kinds)
    listing = Table(title=f"first {min(limit, len(report.problems))} of {len(report.problems)}")
    listing.add_column("kind", style="bold", no_wrap=True)
    listing.add_column("conversation (v1, else v2)", no_wrap=True, min_width=36)
    listing.add_column("detail", overflow="fold")
    for problem in report.problems[:limit]:
        listing.add_row(
            problem.kind,
            str(problem.v1_conversation_id or f"v2 {problem.v2_conversation_id}"),
            problem.detail,
        )
    out.print(listing)
    fail(
        f"{len(report.problems)} parity problem(s) in {len(report.conversations)} "
        "migrated conversation(s)"
    )
