"""A real PgBouncer in transaction mode in front of the test server (DESIGN §6), started by the
tests: Debian's ``pgbouncer`` on 127.0.0.1 and a free port, one wildcard database entry (each
test's database is a fresh clone), trust authentication like the embedded server's.

Without ``pgbouncer`` installed the tests that need it are skipped, except in CI
(``CI=true``), where that is a failure: CI must run them (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

# Debian installs it in /usr/sbin, which an ordinary user's PATH may leave out.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])


def binary() -> str:
    """The ``pgbouncer`` executable; skips the test without one (fails it in CI)."""
    found = shutil.which("pgbouncer", path=SEARCH_PATH)
    if found is None:
        reason = "pgbouncer is not installed (apt-get install pgbouncer)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI runs the PgBouncer tests", pytrace=False)
        pytest.skip(reason)
    return found


@dataclass
class PgBouncer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    def url(self, server_url: URL) -> URL:
        """``server_url``'s user and database, through PgBouncer."""
        return server_url.set(host="127.0.0.1", port=self.port, query={})

    @property
    def log(self) -> str:
        return (self.directory / "pgbouncer.log").read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(server_url: URL, port: int, run_as: str | None) -> str:
    # A socket directory (the embedded server listens on none but that) or a host name.
    host = server_url.query.get("host") or server_url.host or "127.0.0.1"
    return "\n".join([
        "[databases]",
        f"* = host={host} port={server_url.port or 5432}",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "pool_mode = transaction",
        # The embedded server trusts local logins; a password in the test URL is passed on
        # from the auth file when the server asks for one.
        "auth_type = trust",
        "auth_file = userlist.txt",
        "logfile = pgbouncer.log",
        "max_client_conn = 500",
        "default_pool_size = 20",
        *([f"user = {run_as}"] if run_as else []),
        "",
    ])


def _userlist(server_url: URL) -> str:
    users = {"authenticator": "", server_url.username or "postgres": server_url.password or ""}
    return "".join(f'"{user}" "{password}"\n' for user, password in users.items())


def _unprivileged_user(server_url: URL) -> str | None:
    """PgBouncer refuses to run as root: it switches to this user (None: not root). The owner of
    the server's socket directory can reach the socket (the embedded server's is its 0700 data
    directory, owned by the ``pgserver`` user under root)."""
    if os.geteuid() != 0:
        return None
    socket_dir = server_url.query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        owner = pwd.getpwuid(os.stat(socket_dir).st_uid).pw_name
        if owner != "root":
            return owner
    return "nobody"


@contextmanager
def running(server_url: URL) -> Iterator[PgBouncer]:
    """A PgBouncer in front of ``server_url``'s server for the duration."""
    executable = binary()
    run_as = _unprivileged_user(server_url)
    with tempfile.TemporaryDirectory(prefix="mwplu-pgbouncer-") as tmp:
        directory = Path(tmp)
        port = _free_port()
        (directory / "pgbouncer.ini").write_text(_config(server_url, port, run_as))
        (directory / "userlist.txt").write_text(_userlist(server_url))
        if run_as is not None:
            account = pwd.getpwnam(run_as)
            for path in (directory, *directory.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)
        process = subprocess.Popen(
            [executable, "-q", str(directory / "pgbouncer.ini")],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        bouncer = PgBouncer(port=port, directory=directory, process=process)
        try:
            _wait_until_listening(bouncer)
            yield bouncer
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_listening(bouncer: PgBouncer) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if bouncer.process.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", bouncer.port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    log = bouncer.log if (bouncer.directory / "pgbouncer.log").exists() else ""
    raise RuntimeError(f"pgbouncer did not start on port {bouncer.port}:\n{log[-2000:]}")


# A module run both ways overrides conftest's ``route`` fixture with these as its params.
ROUTES = ["direct", "pgbouncer"]
