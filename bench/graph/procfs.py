"""Processes as Linux shows them in ``/proc``: their descendants, CPU ticks (utime+stime) and
memory (VmRSS, VmHWM)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces: the fields after it start past the last ')'
    return raw[raw.rindex(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        for child in children.get(pid, []):
            found.append(child)
            stack.append(child)
    return found


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """utime + stime of each live process, in clock ticks."""
    ticks = {}
    for pid in pids:
        fields = _stat(pid)
        if fields:
            ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def cpu_delta(before: dict[int, int], after: dict[int, int]) -> int:
    """CPU used between two samples: processes born in between count whole, processes that
    ended in between are lost (their last ticks are unknowable from /proc)."""
    return sum(t - before.get(pid, 0) for pid, t in after.items())


def wait_idle(pids: Callable[[], list[int]], *, timeout: float = 180.0) -> None:
    """Wait until the processes use (almost) no CPU: a server still draining requests queued
    by the previous wrk run must not be measured in the next one."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and quiet < 2:
        before = cpu_ticks(pids())
        time.sleep(0.25)
        used = cpu_delta(before, cpu_ticks(pids()))
        quiet = quiet + 1 if used <= 0.02 * CLK_TCK else 0


def status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def started_at(pid: int) -> float | None:
    """When the process started, in seconds since the epoch (``/proc/<pid>/stat`` field 22,
    clock ticks after boot, plus the boot time of ``/proc/stat``)."""
    fields = _stat(pid)
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    boot = next((int(ln.split()[1]) for ln in lines if ln.startswith("btime ")), None)
    if fields is None or boot is None:
        return None
    return boot + int(fields[19]) / CLK_TCK


def postmaster_of(backend: int, backend_start: float) -> int | None:
    """The postmaster of the backend a server reported for a connection (``pg_backend_pid()``
    and ``pg_stat_activity.backend_start``) when that backend is a process of this machine,
    else None: a server on another host, or in another PID namespace (a container), numbers
    its processes apart from ours, and a process here with the same PID is another one. The
    PID counts as the backend only if it started when the server says the backend did and
    its parent is a PostgreSQL server."""
    began = started_at(backend)
    fields = _stat(backend)
    if began is None or fields is None or abs(began - backend_start) > 2.0:
        return None
    parent = int(fields[1])
    program = cmdline(parent).split(" ", 1)[0].rsplit("/", 1)[-1]
    return parent if program in ("postgres", "postmaster") else None
