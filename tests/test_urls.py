"""libpq connection URLs as managed PostgreSQL providers hand them out (``gateway.db.urls``):
mapped to the driver, or refused in one line."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from sqlalchemy import text

from gateway.db import DatabaseUrlError, async_url, connect_args, create_engine
from gateway.settings import Settings
from tests.conftest import Server, render


def test_libpq_parameters_become_driver_arguments() -> None:
    url = (
        "postgresql://u:p@db.example:6543/app?sslmode=require&connect_timeout=10"
        "&application_name=gateway&options=-c%20statement_timeout%3D5000%20--search_path%3Dapp"
    )
    assert str(async_url(url)) == "postgresql+asyncpg://u:***@db.example:6543/app"
    assert connect_args(url) == {
        "timeout": 10.0,
        "ssl": "require",
        "server_settings": {
            "application_name": "gateway",
            "statement_timeout": "5000",
            "search_path": "app",
        },
    }


def test_a_socket_directory_and_ssl_modes() -> None:
    assert connect_args("postgresql://u@/app?host=/var/run/postgresql") == {
        "host": "/var/run/postgresql"
    }
    assert connect_args("postgresql://u@h/app?sslmode=disable") == {"ssl": False}
    verifying = connect_args("postgresql://u@h/app?sslmode=verify-full")["ssl"]
    assert isinstance(verifying, ssl.SSLContext)
    assert verifying.check_hostname and verifying.verify_mode == ssl.CERT_REQUIRED
    ca_only = connect_args("postgresql://u@h/app?sslmode=verify-ca")["ssl"]
    assert not ca_only.check_hostname and ca_only.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u@h:notaport/app", "port is not a number"),
        ("postgresql://u@h/app?foo=1", "unsupported database URL parameter 'foo'"),
        ("postgresql://u@h/app?sslmode=sometimes", "sslmode must be one of"),
        ("postgresql://u@h/app?connect_timeout=soon", "connect_timeout must be a number"),
        ("postgresql://u@h/app?sslmode=verify-ca&sslrootcert=/nonexistent", "sslrootcert"),
        ("postgresql://u@h/app?options=statement_timeout", "unsupported options"),
        ("mysql://u@h/app", "unsupported database URL scheme"),
    ],
)
def test_what_cannot_be_used_is_one_clear_error(url: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError, match=message):
        connect_args(url)


async def test_the_parameters_reach_a_real_server(server: Server, database: str) -> None:
    base = render(server.database_url(database, "authenticator"))
    joiner = "&" if "?" in base else "?"
    url = f"{base}{joiner}sslmode=disable&connect_timeout=5&application_name=mwplu-test"
    engine = create_engine(url, Settings(jwt_secret="x" * 40, env="test"), pool_size=1)
    try:
        async with engine.connect() as conn:
            name: Any = await conn.scalar(text("SELECT current_setting('application_name')"))
    finally:
        await engine.dispose()
    assert name == "mwplu-test"
