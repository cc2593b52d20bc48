"""One point: a workload driven on one server by wrk (a Lua script per workload and server),
with the server's and Postgres' CPU and the workers' RSS around it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.graph.context import Context
from bench.graph.procfs import CLK_TCK, cpu_delta, cpu_ticks, descendants, status_kb, wait_idle
from bench.graph.servers import Server
from bench.graph.workloads import Request, Workload

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
  -- a request's own bearer token ("": the run's)
  local tokens = { %(tokens)s }
  for i = 1, #bodies do
    local token = tokens[i]
    if token == nil or token == "" then token = "%(token)s" end
    local headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. token,
    }
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
            "tokens": (
                ",\n    ".join(json.dumps(r.token or "") for r in requests)
                if any(r.token for r in requests)
                else ""
            ),
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


@dataclass
class Point:
    server: str
    wrk: WrkResult
    cpu_ms: float  # the server's processes, per request
    # Postgres' processes, per request; None when they are not visible (another host)
    pg_cpu_ms: float | None
    rss_mb: float  # the largest worker's resident set after the run
    hwm_mb: float  # the largest worker's peak resident set
    statements: str = ""
    # RSS growth of the largest worker: at the end of the run minus a tenth into it
    rss_growth_mb: float = 0.0
    rss_trace: list[float] = field(default_factory=list)  # at each tenth of the run
    # with --rounds: the req/s of each round of this server, in the order they ran
    rounds: list[float] = field(default_factory=list)


def round_order(servers: list[str], round_index: int) -> list[str]:
    """The order the servers are measured in, in round ``round_index``: each round starts
    one server later, so that none always runs first (after the previous workload) or
    always last."""
    if not servers:
        return []
    shift = round_index % len(servers)
    return servers[shift:] + servers[:shift]


def median_round(points: list[Point]) -> Point:
    """Of one server's rounds, the one with the median req/s (the lower of the two middle
    ones for an even count), reported whole: its latency, CPU and memory were measured
    together. ``rounds`` keeps every round's req/s."""
    ranked = sorted(points, key=lambda p: p.wrk.rps)
    chosen = ranked[(len(ranked) - 1) // 2]
    return replace(chosen, rounds=[p.wrk.rps for p in points])


def measure(ctx: Context, workload: Workload, server: Server) -> Point:
    lua = ctx.tmp / f"{workload.key}-{server.name.replace(' ', '_')}.lua"
    write_lua(lua, workload.requests[server.name], ctx.token)
    url = server.base + workload.requests[server.name][0].path
    warmup = min(3.0, max(1.0, ctx.args.duration / 5))
    def pg_pids() -> list[int]:
        if ctx.postmaster is None:
            return []
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
        pg_cpu_ms=cpu_delta(pg0, pg1) * per if ctx.postmaster is not None else None,
        rss_mb=rss,
        hwm_mb=hwm,
        rss_growth_mb=rss - samples[len(samples) // 10] if samples else 0.0,
        rss_trace=[samples[min(len(samples) - 1, len(samples) * k // 10)] for k in range(1, 11)]
        if samples
        else [],
        statements=ctx.statements.get((workload.key, server.name), ""),
    )
