"""``mwplu-gateway serve``: the embedded or configured database, then uvicorn."""

from __future__ import annotations

import asyncio
import copy
import os
import socket
import sys
from typing import Annotated, Any

import typer

from gateway.db import migrate
from gateway.settings import Settings, SettingsError
from gateway.tools.cli.common import (
    CliError,
    DataDir,
    app,
    database,
    fail,
    load_settings,
    out,
    run_db,
)


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
    with database(settings, serving=True) as (serving, owner_url):
        graphiql_user = None
        if settings.embedded:
            prepare_demo(serving, owner_url)
            from gateway.tools.demo_content import DEMO_USER_ID

            graphiql_user = DEMO_USER_ID  # GraphiQL opens with the demo user's token
        else:
            run_db(asyncio.run, check_reachable(serving))
            if serving.production:
                from gateway.http.health import UnsafeDatabaseRole, check_serving_database

                try:
                    run_db(asyncio.run, check_serving_database(serving))
                except UnsafeDatabaseRole as exc:
                    raise CliError(str(exc)) from None
        run_server(serving, host, port, workers, reload, graphiql_user=graphiql_user)


def prepare_demo(settings: Settings, owner_url: str) -> None:
    from gateway.auth import issue_token
    from gateway.tools import demo
    from gateway.tools.demo_content import DEMO_ADMIN_ID, DEMO_USER_ID

    run_db(migrate.upgrade, owner_url, "head", settings.authenticator_password)
    if not run_db(asyncio.run, demo.demo_loaded(owner_url)):
        out.print("loading demo data (first start)…")
        run_db(asyncio.run, demo.seed_demo(owner_url, scale=1))
    out.print(f"embedded PostgreSQL data in {settings.data_dir}")
    # Lines a shell takes as they are: the README's curl reads $TOKEN.
    out.print(f"# tokens for 24 h: the demo user ({DEMO_USER_ID}), an admin, the service role",
              highlight=False, soft_wrap=True)
    for name, user, role in (
        ("TOKEN", DEMO_USER_ID, "authenticated"),
        ("ADMIN_TOKEN", DEMO_ADMIN_ID, "authenticated"),
        ("SERVICE_TOKEN", DEMO_USER_ID, "service_role"),
    ):
        token = issue_token(settings, user, role=role, ttl_s=86400)
        out.print(f"export {name}={token}", highlight=False, soft_wrap=True)


async def check_reachable(settings: Settings) -> None:
    from sqlalchemy import text

    from gateway.db import create_engine

    engine = create_engine(settings.database_url or "", settings, pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


def run_server(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    reload: bool,
    *,
    graphiql_user: str | None = None,
) -> None:
    import signal

    import uvicorn

    from gateway.http.protocol import PROTOCOL, head_bounded

    # uvicorn re-raises the signal it caught once it has shut down; with a Python handler
    # installed that becomes SystemExit here, so the embedded Postgres is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    if settings.graphiql:
        out.print(f"GraphiQL: http://{host}:{port}/graphql", soft_wrap=True)
    else:
        out.print(f"GraphQL endpoint: http://{host}:{port}/graphql", soft_wrap=True)
    if workers > 1 or reload:
        # Worker processes build their own app, and their protocol its limits, from the
        # environment.
        os.environ["DATABASE_URL"] = settings.database_url or ""
        os.environ["JWT_SECRET"] = settings.jwt_secret or ""
        if graphiql_user is not None:  # the demo user's token in every worker's page
            os.environ["GATEWAY_GRAPHIQL_USER"] = graphiql_user
        uvicorn.run("gateway.http.asgi:app", host=host, port=port, workers=workers, reload=reload,
                    log_level="info", log_config=log_config(), access_log=False, http=PROTOCOL)
        return
    from gateway.http.app import create_app
    from gateway.http.runtime import tune_gc

    app = create_app(settings, graphiql_user=graphiql_user)
    tune_gc()
    uvicorn.run(app, host=host, port=port, log_level="info", log_config=log_config(),
                access_log=False, http=head_bounded(settings.limits))


def log_config() -> dict[str, Any]:
    """uvicorn's logging and the gateway's, on stderr: the gateway's loggers at INFO through
    uvicorn's handler, and the request log (``gateway.requests``) as bare JSON lines, one per
    request in place of uvicorn's access log (``serve`` turns that off). uvicorn configures
    only its own loggers: the gateway's fell back to the root logger's WARNING, and no request
    line was printed."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["line"] = {"format": "%(message)s"}
    config["handlers"]["lines"] = {
        "class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stderr",
    }
    config["loggers"]["gateway"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    config["loggers"]["gateway.requests"] = {
        "handlers": ["lines"], "level": "INFO", "propagate": False,
    }
    return config
