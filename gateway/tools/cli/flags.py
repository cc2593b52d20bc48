"""``mwplu-gateway flags``: read and set feature flags (as the service role)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from gateway.db import Db, Viewer, create_engine, viewer_transaction
from gateway.settings import Settings
from gateway.store import flags as store
from gateway.tools.cli.common import (
    PLAIN_HELP,
    DataDir,
    app,
    database,
    fail,
    load_settings,
    out,
    run_db,
)

T = TypeVar("T")

flags_app = typer.Typer(
    help="Feature flags (progressive rollout of v2).", no_args_is_help=True,
    rich_markup_mode=PLAIN_HELP,
)
app.add_typer(flags_app, name="flags")


def as_service(data_dir: Any, work: Callable[[Db], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction as the service role, on the configured database."""

    async def main(settings: Settings) -> T:
        engine = create_engine(settings.database_url or "", settings, pool_size=1)
        try:
            async with viewer_transaction(engine, Viewer.service(), settings) as db:
                return await work(db)
        finally:
            await engine.dispose()

    with database(load_settings(data_dir)) as (serving, _):
        result: T = run_db(asyncio.run, main(serving))
    return result


def _print(flags: list[store.Flag]) -> None:
    """One line per flag (greppable; a table would wrap in a narrow terminal)."""
    for f in flags:
        out.print(
            f"{f.key}  {'on' if f.enabled else 'off'}  {f.rollout_percentage} %  "
            f"users={len(f.target_user_ids)}  emails={','.join(f.target_emails) or '-'}  "
            f"environments={','.join(f.environments) or 'all'}  {f.description or ''}".rstrip(),
            soft_wrap=True, highlight=False,
        )


@flags_app.command("list")
def flags_list(data_dir: DataDir = None) -> None:
    """Every flag."""
    _print(as_service(data_dir, store.all_flags))


@flags_app.command("set")
def flags_set(
    key: Annotated[str, typer.Argument(help="The flag (created when absent).")],
    enable: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Turn it on or off.")
    ] = None,
    rollout: Annotated[
        int | None, typer.Option(min=0, max=100, help="The share of users, 0 to 100.")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What it does.")] = None,
    target_user: Annotated[
        list[str] | None, typer.Option("--target-user", help="A user id it is always on for.")
    ] = None,
    target_email: Annotated[
        list[str] | None, typer.Option("--target-email", help="An email it is always on for.")
    ] = None,
    environment: Annotated[
        list[str] | None,
        typer.Option("--environment", help="A GATEWAY_ENV it applies in (default: all)."),
    ] = None,
    clear_targets: Annotated[
        bool, typer.Option("--clear-targets", help="Remove every targeted user and email.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Create a flag or change what is given; every worker applies it from its next request."""
    if not store.KEY.fullmatch(key):
        fail(f"the key must be {store.KEY_RULE}")
    changes: dict[str, Any] = {}
    if enable is not None:
        changes["enabled"] = enable
    if rollout is not None:
        changes["rollout_percentage"] = rollout
    if description is not None:
        changes["description"] = description
    if clear_targets:
        changes["target_user_ids"], changes["target_emails"] = [], []
    if target_user:
        try:
            changes["target_user_ids"] = [uuid.UUID(u) for u in target_user]
        except ValueError:
            fail(f"--target-user must be a user id (UUID), got {target_user!r}")
    if target_email:
        changes["target_emails"] = list(target_email)
    if environment:
        changes["environments"] = list(environment)

    async def work(db: Db) -> list[store.Flag]:
        await store.put(db, key, changes)
        return [f for f in await store.all_flags(db) if f.key == key]

    _print(as_service(data_dir, work))


@flags_app.command("check")
def flags_check(
    key: Annotated[str, typer.Argument(help="The flag.")],
    user: Annotated[str, typer.Option("--user", help="The user's id (UUID).")],
    data_dir: DataDir = None,
) -> None:
    """Whether the flag is on for a user, and why (the rule the gateway routes by)."""
    try:
        user_id = uuid.UUID(user)
    except ValueError:
        fail(f"--user must be a user id (UUID), got {user!r}")
    result, reason = as_service(data_dir, lambda db: store.decision(db, key, user_id))
    out.print(f"{key} for {user_id}: {'on' if result else 'off'} ({reason})")
