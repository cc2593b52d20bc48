"""The command line's Typer apps, its one-line failures and the database it works on."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from gateway.db import DatabaseUrlError, async_url, migrate
from gateway.settings import Settings, SettingsError
from gateway.tools.embedded import DataDirLock, EmbeddedError, EmbeddedPostgres, jwt_secret

# Plain (click's) help: typer's rich help prints a flag as taking a value ("--check <bool>").
PLAIN_HELP = None
app = typer.Typer(
    help="mwplu-gateway: one GraphQL graph over the MWPLU v1 and v2 chat stores.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=PLAIN_HELP,
)
db_app = typer.Typer(
    help="Schema migrations (Alembic).", no_args_is_help=True, rich_markup_mode=PLAIN_HELP
)
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
def database(settings: Settings, *, serving: bool = False) -> Any:
    """Yield ``(settings, migrations_url)`` for the configured or the embedded server.

    Embedded: the server of a data dir belongs to whoever holds its lock. ``serve``
    (``serving``) must get it; another command that cannot get it uses the running server and
    leaves it running."""
    if settings.database_url is not None:
        yield settings, settings.migrations_database_url or settings.database_url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    lock = DataDirLock(settings.data_dir)
    try:
        owned = lock.acquire()
    except EmbeddedError as exc:
        raise CliError(str(exc)) from None
    if serving and not owned:
        raise CliError(
            f"the data dir {settings.data_dir} is in use by another mwplu-gateway process "
            f"(pid {lock.holder()}); stop it first, or give another --data-dir"
        )
    try:
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
            if owned:
                embedded.stop()
    finally:
        lock.release()


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
