"""Schema migrations: Alembic driven from code (no alembic.ini needed by users)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from gateway.db.urls import async_url, connect_args

MIGRATIONS = Path(__file__).parent / "migrations"


class MigrationError(RuntimeError):
    """A migration command could not run (unknown revision, database refused, …)."""


def alembic_config(url: str, authenticator_password: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = async_url(url)
    config.attributes["connect_args"] = connect_args(url)
    config.attributes["authenticator_password"] = authenticator_password
    return config


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    script = ScriptDirectory(str(MIGRATIONS))
    return {rev.revision for rev in script.walk_revisions()}


def _check_target(target: str) -> None:
    plain = target.split("@")[-1]
    if plain in ("head", "heads", "base") or plain.lstrip("+-").isdigit():
        return
    if plain not in known_revisions():
        raise MigrationError(
            f"unknown revision {target!r}; known: {', '.join(sorted(known_revisions()))}"
        )


def _in_thread(fn: object, *args: object) -> None:
    # env.py runs its own event loop (asyncio.run); alembic commands must not be called from
    # inside a running loop, so async callers hop to a worker thread.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        fn(*args)  # type: ignore[operator]
        return
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(fn, *args).result()  # type: ignore[arg-type]


def upgrade(url: str, target: str = "head", authenticator_password: str | None = None) -> None:
    """Upgrade to ``target``; then, when given, set the ``authenticator`` role's password —
    on every upgrade, so that a database already at head gets it too (idempotent)."""
    _check_target(target)
    try:
        _in_thread(command.upgrade, alembic_config(url, authenticator_password), target)
    except CommandError as exc:
        raise MigrationError(str(exc)) from None
    if authenticator_password:
        _in_thread(asyncio.run, _set_password(url, authenticator_password))


async def _set_password(url: str, password: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(async_url(url), connect_args=connect_args(url))
    try:
        async with engine.connect() as conn:
            exists = await conn.scalar(
                text("SELECT count(*) FROM pg_roles WHERE rolname = 'authenticator'")
            )
            if exists:
                quoted = await conn.scalar(text("SELECT quote_literal(:p)"), {"p": password})
                await conn.execute(text(f"ALTER ROLE authenticator PASSWORD {quoted}"))
                await conn.commit()
    finally:
        await engine.dispose()


def downgrade(url: str, target: str) -> None:
    _check_target(target)
    try:
        _in_thread(command.downgrade, alembic_config(url), target)
    except CommandError as exc:
        raise MigrationError(str(exc)) from None


async def current_revision(url: str) -> str | None:
    """The revision recorded in the database (None when never migrated)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(async_url(url), connect_args=connect_args(url))
    try:
        async with engine.connect() as conn:
            exists = (await conn.execute(text("SELECT to_regclass('alembic_version')"))).scalar()
            if exists is None:
                return None
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    finally:
        await engine.dispose()
