"""The ``mwplu-gateway`` command line, run as a real process with a controlled environment.

Every failure is one line on stderr starting with ``error:`` (never a traceback) and a non-zero
exit status.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from gateway.db import migrate
from tests.conftest import Server, render
from tests.serving import free_port, wait_until_answering

REPO = Path(__file__).resolve().parent.parent
SECRET = "cli-test-secret-0123456789-0123456789-0123456789"
UNREACHABLE_URL = "postgresql://u@127.0.0.1:1/x"
TIMEOUT_S = 60

COMMANDS = [
    [],
    ["serve"],
    ["db"],
    ["db", "upgrade"],
    ["db", "downgrade"],
    ["db", "current"],
    ["seed-demo"],
    ["token"],
    ["export-schema"],
    ["migrate-conversations"],
    ["flags"],
    ["flags", "set"],
]


def cli(*args: str, env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gateway.tools.cli`` with exactly ``env`` (plus PATH); capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.tools.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A minimal environment: no DATABASE_URL, JWT_SECRET or data dir inherited."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@pytest.fixture
def not_a_dir(tmp_path: Path) -> Path:
    """A data dir that cannot be created (its parent is a regular file; tests run as root)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    return blocker / "data"


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


# --- failures are one clean line ----------------------------------------------------------------


def test_unreachable_database(env: dict[str, str]) -> None:
    result = cli("db", "upgrade", env={**env, "DATABASE_URL": UNREACHABLE_URL})
    line = assert_one_error_line(result)
    assert line.startswith("error: cannot reach the database")
    assert "127.0.0.1" in line


def test_malformed_database_url(env: dict[str, str]) -> None:
    result = cli("db", "upgrade", env={**env, "DATABASE_URL": "not a url"})
    line = assert_one_error_line(result)
    assert line == "error: DATABASE_URL: malformed database URL: <unparseable>"


def test_unsupported_database_url_scheme(env: dict[str, str]) -> None:
    result = cli("db", "current", env={**env, "DATABASE_URL": "mysql://u@localhost/x"})
    line = assert_one_error_line(result)
    assert "unsupported database URL scheme 'mysql'" in line


def test_serve_on_a_port_in_use(
    env: dict[str, str], busy_port: int, server: Server, database: str
) -> None:
    # given a reachable database (so nothing embedded starts) and a port already taken
    url = render(server.database_url(database, "authenticator"))
    result = cli("serve", "--port", str(busy_port), env={**env, "DATABASE_URL": url})
    line = assert_one_error_line(result)
    assert line == f"error: port {busy_port} on 127.0.0.1 is already in use"
    assert "GraphiQL" not in result.stdout


def test_serve_checks_the_port_before_anything_else(
    env: dict[str, str], busy_port: int, not_a_dir: Path
) -> None:
    # given both a taken port and an unusable embedded data dir, the port is reported:
    # nothing was started before the check
    result = cli("serve", "--port", str(busy_port), "--data-dir", str(not_a_dir), env=env)
    line = assert_one_error_line(result)
    assert line == f"error: port {busy_port} on 127.0.0.1 is already in use"


def test_serve_with_an_unwritable_data_dir(env: dict[str, str], not_a_dir: Path) -> None:
    result = cli("serve", "--port", str(free_port()), "--data-dir", str(not_a_dir), env=env)
    line = assert_one_error_line(result)
    assert line.startswith(f"error: data dir {not_a_dir} cannot be created")


def test_db_upgrade_with_an_unwritable_data_dir(env: dict[str, str], not_a_dir: Path) -> None:
    result = cli("db", "upgrade", env={**env, "GATEWAY_DATA_DIR": str(not_a_dir)})
    line = assert_one_error_line(result)
    assert line.startswith(f"error: data dir {not_a_dir} cannot be created")


def test_db_upgrade_to_an_unknown_revision(
    env: dict[str, str], server: Server, database: str
) -> None:
    url = render(server.database_url(database))
    result = cli("db", "upgrade", "nope", env={**env, "DATABASE_URL": url})
    line = assert_one_error_line(result)
    assert line.startswith("error: unknown revision 'nope'; known: 0001_auth")


def test_bad_setting(env: dict[str, str]) -> None:
    result = cli("db", "current", env={**env, "GATEWAY_ENV": "staging"})
    line = assert_one_error_line(result)
    assert line.startswith("error: GATEWAY_ENV must be one of")


# --- commands -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_help(env: dict[str, str], command: list[str]) -> None:
    result = cli(*command, "--help", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "Usage:" in result.stdout
    assert " ".join(["gateway.tools.cli", *command]) in " ".join(result.stdout.split())


def test_token_is_a_jwt_pyjwt_verifies(env: dict[str, str]) -> None:
    user = str(uuid.uuid4())
    result = cli("token", "--user", user, "--ttl", "600", env={**env, "JWT_SECRET": SECRET})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    claims = jwt.decode(lines[0], SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == user
    assert claims["role"] == "authenticated"
    assert 590 <= claims["exp"] - time.time() <= 600


def test_service_token(env: dict[str, str]) -> None:
    user = str(uuid.uuid4())
    result = cli("token", "--user", user, "--role", "service_role",
                 env={**env, "JWT_SECRET": SECRET})
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"],
                        audience="authenticated")
    assert claims["role"] == "service_role"


def test_token_for_a_user_that_is_not_a_uuid(env: dict[str, str]) -> None:
    result = cli("token", "--user", "not-a-uuid", env={**env, "JWT_SECRET": SECRET})
    line = assert_one_error_line(result)
    assert line == "error: --user must be a UUID, got 'not-a-uuid'"
    assert result.stdout == ""


def test_token_with_an_unknown_role(env: dict[str, str]) -> None:
    result = cli("token", "--user", str(uuid.uuid4()), "--role", "postgres",
                 env={**env, "JWT_SECRET": SECRET})
    line = assert_one_error_line(result)
    assert line == "error: --role must be authenticated or service_role"


def test_export_schema_check_passes_on_the_checked_in_schema(env: dict[str, str]) -> None:
    result = cli("export-schema", "--check", env=env)
    assert result.returncode == 0, result.stderr
    assert "schema.graphql is up to date" in result.stdout


def test_export_schema_check_fails_on_a_modified_copy(
    env: dict[str, str], tmp_path: Path
) -> None:
    # given a copy of the SDL the code exports, which --check accepts
    copy = tmp_path / "schema.graphql"
    assert cli("export-schema", "--path", str(copy), env=env).returncode == 0
    assert cli("export-schema", "--check", "--path", str(copy), env=env).returncode == 0
    # when a field is renamed in the copy, then --check fails with exit status 1
    copy.write_text(copy.read_text().replace("databaseId", "dbId", 1))
    result = cli("export-schema", "--check", "--path", str(copy), env=env)
    line = assert_one_error_line(result)
    assert result.returncode == 1
    assert line.startswith(f"error: {copy} differs from the schema in the code")


def test_db_current_prints_the_head(env: dict[str, str], server: Server, database: str) -> None:
    url = render(server.database_url(database))
    result = cli("db", "current", env={**env, "DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    head = migrate.head_revision()
    assert result.stdout.splitlines() == [f"current: {head}", f"head:    {head}"]


def test_db_current_on_an_unmigrated_database(
    env: dict[str, str], server: Server, empty_database: str
) -> None:
    url = render(server.database_url(empty_database))
    result = cli("db", "current", env={**env, "DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "current: base (empty)"


def test_flags_set_list_and_check(
    env: dict[str, str], server: Server, database: str
) -> None:
    """An operator rolls v2 out to a quarter of users and targets one; then checks a user."""
    url = {**env, "DATABASE_URL": render(server.database_url(database))}
    target = "00000000-0000-4000-8000-00000000beef"
    result = cli("flags", "set", "v2_conversations", "--enable", "--rollout", "25",
                 "--target-user", target, env=url)
    assert result.returncode == 0, result.stderr
    assert "v2_conversations" in result.stdout and "25 %" in result.stdout
    listed = cli("flags", "list", env=url)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "v2_conversations" in line)
    assert row.startswith("v2_conversations  on  25 %  users=1  emails=-  environments=all")
    checked = cli("flags", "check", "v2_conversations", "--user", target, env=url)
    assert checked.stdout.strip() == f"v2_conversations for {target}: on (target_user)"
    off = cli("flags", "set", "v2_conversations", "--disable", env=url)
    assert off.returncode == 0, off.stderr
    checked = cli("flags", "check", "v2_conversations", "--user", target, env=url)
    assert checked.stdout.strip() == f"v2_conversations for {target}: off (disabled)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["flags", "set", "Bad Key"], "error: the key must be"),
        (["flags", "set", "ok", "--target-user", "nope"], "error: --target-user must be"),
        (["flags", "check", "ok", "--user", "nope"], "error: --user must be"),
    ],
)
def test_flags_bad_input_is_one_line(
    env: dict[str, str], server: Server, database: str, args: list[str], message: str
) -> None:
    result = cli(*args, env={**env, "DATABASE_URL": render(server.database_url(database))})
    assert assert_one_error_line(result).startswith(message)


def test_export_schema_check_without_the_file_says_so(env: dict[str, str], tmp_path: Path) -> None:
    result = cli("export-schema", "--check", env=env, cwd=tmp_path)
    assert assert_one_error_line(result).startswith("error: schema.graphql not found")


def test_db_downgrade_takes_a_relative_revision(
    env: dict[str, str], server: Server, database: str
) -> None:
    url = {**env, "DATABASE_URL": render(server.database_url(database))}
    result = cli("db", "downgrade", "-1", env=url)
    assert result.returncode == 0, result.stderr
    scripts = migrate.ScriptDirectory(str(migrate.MIGRATIONS))
    previous = scripts.get_revision(migrate.head_revision()).down_revision
    current = cli("db", "current", env=url)
    assert current.stdout.splitlines()[0] == f"current: {previous}"


def test_commands_on_a_served_data_dir_leave_its_server_running(
    env: dict[str, str], tmp_path: Path
) -> None:
    """``db current`` beside a running ``serve`` on the same data dir used to stop the serve's
    embedded PostgreSQL (every request INTERNAL from then on); a second ``serve`` is refused."""
    import httpx

    data_dir = str(tmp_path / "data")
    port = free_port()
    serving = subprocess.Popen(
        [sys.executable, "-m", "gateway.tools.cli", "serve", "--data-dir", data_dir,
         "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # first start: initdb, migrations, demo data
        wait_until_answering(
            f"{base}/readyz", serving, within_s=120, every_s=0.5,
            output=lambda: serving.stderr.read() if serving.stderr else "",
        )
        current = cli("db", "current", "--data-dir", data_dir, env=env)
        assert current.returncode == 0, current.stderr
        assert current.stdout.startswith(f"current: {migrate.head_revision()}")
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        query = {"query": "{ cities(first: 1) { totalCount } }"}
        answer = httpx.post(f"{base}/graphql", json=query, timeout=10).json()
        assert answer["data"]["cities"]["totalCount"] > 0, answer
        second = cli("serve", "--data-dir", data_dir, "--port", str(free_port()), env=env)
        line = assert_one_error_line(second)
        assert "is in use by another mwplu-gateway process" in line
    finally:
        serving.terminate()
        serving.wait(timeout=30)
        if serving.stderr is not None:
            serving.stderr.close()


@pytest.mark.parametrize("command", [["export-schema"], ["flags", "set"], ["serve"], []])
def test_help_shows_flags_as_flags(command: list[str]) -> None:
    """A flag's help does not read as if it took a value (typer's rich help printed
    ``--check <bool>``)."""
    from typer.testing import CliRunner

    from gateway.tools.cli import app

    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help  " in result.output or "--help " in result.output
