"""``/healthz`` (the process is up), ``/readyz`` (the database is reachable and migrated;
the read replicas' state as this worker last checked it) and the production check that the
database role cannot bypass row-level security."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from gateway.db import create_engine, migrate, pooled
from gateway.db.replicas import replicas_of
from gateway.http.requests import JSONResponse
from gateway.settings import Settings

log = logging.getLogger("gateway.http")

# A client's X-Request-Id is echoed in the response and the logs only when it looks like one.


class UnsafeDatabaseRole(RuntimeError):
    """In production the gateway's login role must be subject to RLS."""


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    engine: AsyncEngine = request.app.state.engine
    head = migrate.head_revision()
    try:
        async with pooled(engine) as conn:
            current = (
                await conn.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar()
    except Exception as exc:  # any failure to reach the database means "not ready"
        reason = type(exc).__name__
        if "alembic_version" in str(exc):
            reason = "migrations have not been applied"
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    if current != head:
        return JSONResponse(
            {
                "status": "unavailable",
                "reason": f"database at revision {current}, expected {head}",
            },
            status_code=503,
        )
    body: dict[str, Any] = {"status": "ready", "revision": current}
    replicas = replicas_of(engine)
    if replicas is not None:
        # Reported, not required: queries a replica cannot take go to the primary.
        body["replicas"] = [replica.describe() for replica in replicas.replicas]
    return JSONResponse(body)


ROLE_CHECK = text(
    """
    SELECT r.rolname, r.rolsuper, r.rolbypassrls,
           ARRAY(
             SELECT c.oid::regclass::text FROM pg_class c
             WHERE c.oid IN (to_regclass('public.chat_conversations'),
                             to_regclass('public.v2_conversations'))
               AND pg_has_role(r.oid, c.relowner, 'MEMBER')
             ORDER BY 1
           ) AS owned
    FROM pg_roles r
    WHERE r.rolname IN (current_user, 'anon', 'authenticated')
    ORDER BY r.rolname = current_user DESC, r.rolname
    """
)


async def check_database_role(engine: AsyncEngine) -> None:
    """Refuse a login role (or viewer role) that RLS does not bind: a superuser, a role with
    BYPASSRLS, or one that owns (or can become the owner of) the chat tables.

    Raises ``UnsafeDatabaseRole`` with a one-line reason.
    """
    async with pooled(engine) as conn:
        rows = (await conn.execute(ROLE_CHECK)).mappings().all()
        login = (await conn.execute(text("SELECT current_user"))).scalar()
    for row in rows:
        name = row["rolname"]
        which = "login role" if name == login else "viewer role"
        if row["rolsuper"]:
            reason = "is a superuser"
        elif row["rolbypassrls"]:
            reason = "has BYPASSRLS"
        elif row["owned"]:
            reason = f"owns {', '.join(row['owned'])}"
        else:
            continue
        raise UnsafeDatabaseRole(
            f"the database {which} {name!r} {reason}: row-level security would not apply; "
            "in production serve through a role like 'authenticator' (NOINHERIT, not an owner)"
        )


async def check_serving_database(settings: Settings) -> None:
    """``check_database_role`` on a one-connection engine of ``settings.database_url`` (the
    CLI runs it before starting the server, to fail with one clear line)."""
    engine = create_engine(serve_url(settings), settings, pool_size=1)
    try:
        await check_database_role(engine)
    finally:
        await engine.dispose()


def serve_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise RuntimeError("create_app needs settings.database_url (the CLI sets it)")
    return settings.database_url
