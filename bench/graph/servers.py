"""The servers under load: the gateway, the raw-SQL limit and PostGraphile 5 (its npm install
too), each started on 127.0.0.1 and stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.engine import URL

from bench.graph.data import connect_args, libpq_url, render
from bench.graph.procfs import cmdline, descendants
from bench.graph.workloads import graphql_body

if TYPE_CHECKING:
    from bench.graph.context import Context


ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "bench-secret-0123456789-0123456789-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def server_env() -> dict[str, str]:
    """The environment of a server this run starts: ours with the repository on ``PYTHONPATH``
    and without any ``GATEWAY_*`` setting (the run sets the gateway's own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def uvicorn_command(
    app: str, port: int, workers: int, http: str = "httptools", log_config: Path | None = None
) -> list[str]:
    """``app`` served by uvicorn on 127.0.0.1 with uvloop, no access log; with ``log_config``
    (a JSON file), that logging."""
    return [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--loop", "uvloop", "--http", http, "--no-access-log",
        "--log-level", "warning", *(["--log-config", str(log_config)] if log_config else []),
    ]


def start_gateway(
    procs: Processes,
    auth_url: URL,
    tmp: Path,
    *,
    workers: int = 1,
    settings: dict[str, str] | None = None,
) -> Server:
    """The gateway as ``mwplu-gateway serve`` runs it (uvicorn, uvloop, the head-bounded httptools
    protocol of issue 16, item 7, serve's logging: one request line per request), logged in as
    ``auth_url``, with ``settings`` (``GATEWAY_*``) added; its data directory and log under
    ``tmp``. Started, not waited for."""
    from gateway.http.protocol import PROTOCOL
    from gateway.tools.cli.serve import log_config

    logging_file = tmp / "gateway-logging.json"
    logging_file.write_text(json.dumps(log_config()))

    env = {
        **server_env(),
        "DATABASE_URL": render(auth_url),
        "JWT_SECRET": JWT_SECRET,
        "GATEWAY_ENV": "test",
        "GATEWAY_DATA_DIR": str(tmp / "gateway-data"),
        **(settings or {}),
    }
    port = free_port()
    return procs.start(
        "gateway",
        uvicorn_command(
            "gateway.http.asgi:app", port, workers, http=PROTOCOL, log_config=logging_file
        ),
        env=env, cwd=ROOT, log=tmp / "gateway.log", port=port, multiworker=workers > 1,
    )


def start_servers(
    ctx: Context, procs: Processes, auth_url: URL, node: Path | None, npm_dir: Path
) -> None:
    """The servers, all logged in as ``auth_url`` (``authenticator``), and wait until they
    answer."""
    settings = {"GATEWAY_POOL_SIZE": str(ctx.args.pool_size)} if ctx.args.pool_size else {}
    ctx.servers["gateway"] = start_gateway(
        procs, auth_url, ctx.tmp, workers=ctx.args.workers, settings=settings
    )
    port = free_port()
    database = connect_args(auth_url)
    raw_env = {
        **server_env(),
        "RAW_PG_HOST": database["host"],
        "RAW_PG_USER": "authenticator",
        "RAW_PG_DATABASE": auth_url.database or "mwplu",
        "POOL_SIZE": str(ctx.args.pool_size or 10),
    }
    if "port" in database:
        raw_env["RAW_PG_PORT"] = str(database["port"])
    if "password" in database:
        raw_env["RAW_PG_PASSWORD"] = database["password"]
    ctx.servers["raw limit"] = procs.start(
        "raw limit", uvicorn_command("bench.raw_server:app", port, ctx.args.workers),
        env=raw_env, cwd=ROOT, log=ctx.tmp / "raw.log", port=port,
        multiworker=ctx.args.workers > 1,
    )
    if node is not None:
        port = free_port()
        shutil.copy(ROOT / "bench" / "postgraphile_server.mjs", npm_dir / "server.mjs")
        pgl_env = {
            **server_env(),
            "DATABASE_URL": libpq_url(auth_url),
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
