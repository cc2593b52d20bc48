"""The per-request viewer transaction.

The request boundary owns the transaction: ``open_transaction`` begins it and switches to the
viewer's role with their claims set *locally* (as PostgREST does) in one round trip, and
``end_transaction`` commits or rolls back. Store functions take the resulting ``Db`` and never
commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db.connection import Db, driver, send
from gateway.db.engine import announce, pool_capacity
from gateway.db.failures import unavailable
from gateway.db.kept import (
    UNENDED,
    discard,
    give_back,
    keep_unended,
    keepable,
    take_connection,
)
from gateway.settings import Settings

log = logging.getLogger(__name__)
# A connection's transaction began READ ONLY and its COMMIT may be deferred (its record's info;
# ``gateway.db.kept``). Not through PgBouncer: there the gateway is one client of many, and a
# server connection kept in a transaction is one the others cannot have meanwhile.
DEFER_COMMIT = "mwplu_defer_commit"

ROLES = ("anon", "authenticated", "service_role")


@dataclass(frozen=True)
class Viewer:
    """Who is asking: the database role to run as and the JWT claims to expose to RLS."""

    role: str
    user_id: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def anonymous(cls) -> Viewer:
        return cls(role="anon", claims={"role": "anon"})

    @classmethod
    def service(cls) -> Viewer:
        return cls(role="service_role", claims={"role": "service_role"})

    @classmethod
    def user(cls, user_id: str) -> Viewer:
        return cls(
            role="authenticated",
            user_id=user_id,
            claims={"sub": user_id, "role": "authenticated", "aud": "authenticated"},
        )


def statement_timeout_ms(settings: Settings, role: str) -> int:
    return {
        "anon": settings.statement_timeout_anon_ms,
        "authenticated": settings.statement_timeout_authenticated_ms,
    }.get(role, settings.statement_timeout_service_ms)


def viewer_settings(viewer: Viewer, settings: Settings) -> dict[str, str]:
    """The settings that make a transaction ``viewer``'s, by name: the role, the claims that
    row-level security reads, the role's statement timeout, and the environment (read by
    ``feature_flag_decision``: a flag may be limited to some environments). ``role`` comes
    first (``SETUP_MARKER``)."""
    if viewer.role not in ROLES:
        raise ValueError(f"unknown role {viewer.role!r}")
    return {
        "role": viewer.role,
        "request.jwt.claims": json.dumps(dict(viewer.claims)),
        "statement_timeout": str(statement_timeout_ms(settings, viewer.role)),
        "app.environment": settings.env,
    }


def literal(value: str) -> str:
    """``value`` as an escape-string literal, which reads the same whatever
    ``standard_conforming_strings`` is."""
    if "\x00" in value:
        raise ValueError("a text literal cannot hold NUL")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


# PostgreSQL plans a prepared statement again for every execution while that custom plan looks
# cheaper than its generic one, as it does for ``id = ANY($1)``; under row-level security the
# planning is most of the work (a by-id read: 0.15 ms of server CPU, 0.03 ms with its generic
# plan; a post's payload 0.45 ms, 0.08 ms). A transaction whose statements all go by key or
# carry no parameter (``OperationPlan.generic_plans``) takes generic plans; statistics and
# listings with a filter value or a cursor, whose values decide their plan, keep the server's
# choice.
GENERIC_PLANS = "; SET LOCAL plan_cache_mode = force_generic_plan"


def set_local(viewer: Viewer, settings: Settings) -> str:
    """``viewer_settings`` as ``SET LOCAL`` commands in one simple query, the values as
    literals (a simple query takes no bind parameters). PostgreSQL runs a ``SET`` without
    parsing and planning a query: 0.02-0.03 ms less of its CPU per transaction than one
    ``SELECT set_config(…)`` of the same settings (measured side by side)."""
    return "; ".join(
        f"SET LOCAL {name} = {literal(value)}"
        for name, value in viewer_settings(viewer, settings).items()
    )


async def become(db: Db, viewer: Viewer, settings: Settings) -> None:
    """Switch the open transaction to ``viewer``; every setting is local to the transaction."""
    await db.send(set_local(viewer, settings))


def begin_as(
    viewer: Viewer, settings: Settings, generic_plans: bool = False, read_only: bool = False
) -> str:
    """BEGIN and ``set_local``'s settings as one simple query (one round trip); with
    ``generic_plans``, generic plans for the transaction's statements (``GENERIC_PLANS``);
    ``read_only``, a transaction that cannot write (``DEFER_COMMIT``).

    Remembered for the last viewers seen (a cached token's viewer is the same object on every
    request); the entry holds both objects, so their ids cannot be reused while it lives."""
    key = (id(viewer), id(settings), generic_plans, read_only)
    cached = _begin.get(key)
    if cached is not None and cached[0] is viewer and cached[1] is settings:
        return cached[2]
    sql = ("BEGIN READ ONLY; " if read_only else "BEGIN; ") + set_local(viewer, settings)
    if generic_plans:
        sql += GENERIC_PLANS
    _begin[key] = (viewer, settings, sql)
    if len(_begin) > 1024:
        _begin.pop(next(iter(_begin)))
    return sql


_begin: dict[tuple[int, int, bool, bool], tuple[Viewer, Settings, str]] = {}


def _attempts(engine: AsyncEngine) -> int:
    """Every pooled connection may have been dropped at once (a server restart)."""
    return (pool_capacity(engine) or 1) + 1


async def open_transaction(
    engine: AsyncEngine,
    viewer: Viewer,
    settings: Settings,
    generic_plans: bool = False,
    read_only: bool = False,
) -> AsyncConnection:
    """A connection with a transaction open as ``viewer``: one that a request transaction
    gave back (``take_connection``), else one from the pool.

    Statements go through SQLAlchemy as usual; the connection is in its AUTOCOMMIT mode, so
    SQLAlchemy sends no BEGIN or COMMIT of its own, and ``end_transaction`` ends the
    transaction. Three round trips per request (set-up, the statement, COMMIT) where
    SQLAlchemy's own transaction and ping took seven; two for a ``read_only`` one whose
    connection is taken again soon (``DEFER_COMMIT``, ``gateway.db.kept``).

    Connections are not pinged before use: one the server dropped (a restart, an idle
    timeout) fails the set-up, which nothing depends on yet, and is replaced."""
    setup = begin_as(viewer, settings, generic_plans, read_only)
    for attempt in range(_attempts(engine), 0, -1):
        conn = await take_connection(engine, unended=True)
        info = conn.sync_connection.info  # type: ignore[union-attr]
        sql = setup if info.pop(UNENDED, None) is None else "COMMIT; " + setup
        try:
            announce(engine.sync_engine, sql)
            await send(conn, sql)
        except BaseException:
            try:
                dropped = driver(conn).is_closed()
            except Exception:
                dropped = False
            await discard(conn)
            if dropped and attempt > 1:
                continue
            raise
        info[DEFER_COMMIT] = read_only and not settings.pgbouncer
        return conn
    raise AssertionError("unreachable")  # pragma: no cover


async def end_transaction(conn: AsyncConnection, *, commit: bool) -> None:
    """COMMIT (or ROLLBACK) what ``open_transaction`` began and give the connection back
    (``give_back``). A COMMIT that fails, or that the server answers with ROLLBACK (the
    transaction had failed), is an error: nothing is reported written that was not. A ROLLBACK
    that cannot be sent (the connection broke, or a cancelled statement left it invalid)
    discards the connection, and with it the transaction, without an error of its own: the
    request is already failing for its own reason."""
    if conn.invalidated:
        await conn.close()
        if commit:
            raise RuntimeError("the transaction was not committed (its connection broke)")
        return
    if commit and end_deferred(conn):
        return
    try:
        status = await send(conn, "COMMIT" if commit else "ROLLBACK")
    except Exception as exc:
        await discard(conn)
        if commit:
            raise
        if unavailable(exc):  # the server went away (a restart): one line, no traceback
            log.info("rollback failed, the connection was discarded: %s", type(exc).__name__)
        else:
            log.warning("rollback failed; the connection was discarded", exc_info=True)
        return
    except BaseException:
        await discard(conn)
        raise
    await give_back(conn)
    if commit and status != "COMMIT":
        raise RuntimeError(f"the transaction was not committed (the server answered {status})")


def end_deferred(conn: AsyncConnection) -> bool:
    """End a read-only transaction whose COMMIT may wait for the connection's next user
    (``DEFER_COMMIT``): the connection is kept with it open (``keep_unended``), nothing is sent
    and nothing awaited. False when it cannot be (then ``end_transaction`` sends the COMMIT)."""
    if conn.invalidated or not conn.sync_connection.info.get(DEFER_COMMIT):  # type: ignore[union-attr]
        return False
    if not keepable(conn):
        return False
    keep_unended(conn)
    return True


@asynccontextmanager
async def viewer_transaction(
    engine: AsyncEngine, viewer: Viewer, settings: Settings
) -> AsyncIterator[Db]:
    """A transaction run as ``viewer``: committed on success, rolled back on any error."""
    conn = await open_transaction(engine, viewer, settings)
    try:
        yield Db(conn)
    except BaseException:
        await asyncio.shield(end_transaction(conn, commit=False))
        raise
    await end_transaction(conn, commit=True)
