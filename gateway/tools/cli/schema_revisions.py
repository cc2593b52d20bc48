"""``mwplu-gateway db``: the database schema's Alembic revisions."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from gateway.db import migrate
from gateway.tools.cli.common import DataDir, database, db_app, load_settings, out, run_db


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


# "-1" is a revision, not an option
@db_app.command("downgrade", context_settings={"ignore_unknown_options": True})
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
