"""Profiles of the gateway: pyinstrument in-process (``--profile``) and py-spy on the live
worker under wrk load (``--py-spy``), summarised by package and frame."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import URL

from bench.graph.context import Context
from bench.graph.measure import run_wrk, write_lua
from bench.graph.procfs import wait_idle
from bench.graph.servers import JWT_SECRET
from bench.graph.workloads import Workload


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
    gateway_requests = workload.requests["gateway"]
    bodies = [r.body for r in gateway_requests]
    # each body with its own token (R8: the conversation's owner), else the run's
    headers_of = [
        {"authorization": f"Bearer {r.token or token}", "content-type": "application/json"}
        for r in gateway_requests
    ]
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as client:
            for i in range(min(20, requests)):  # warm caches and the pool
                await client.post("/graphql", content=bodies[i % len(bodies)],
                                  headers=headers_of[i % len(bodies)])
            began = time.perf_counter()
            for i in range(requests):
                await client.post("/graphql", content=bodies[i % len(bodies)],
                                  headers=headers_of[i % len(bodies)])
            plain = (time.perf_counter() - began) / requests
            profiler = Profiler(interval=0.001, async_mode="disabled")
            began = time.perf_counter()
            profiler.start()
            for i in range(requests):
                body, headers = bodies[i % len(bodies)], headers_of[i % len(bodies)]
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
    if ctx.args.py_spy_dir is not None:
        ctx.args.py_spy_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, ctx.args.py_spy_dir / out.name)
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
