"""The app served by uvicorn on 127.0.0.1, in the test's event loop (real HTTP and
WebSockets)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def served(app: Any, *, lifespan: str = "off") -> AsyncIterator[int]:
    """``app`` under uvicorn on a free port (yielded); stopped on exit."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan=lifespan, log_level="warning",
        log_config=None, timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises why it could not start
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


def wait_until_answering(
    url: str, process: subprocess.Popen[Any], *, within_s: float, every_s: float,
    output: Callable[[], str],
) -> None:
    """Until ``url`` answers 200 (a server ``process`` started); fails with the process's
    ``output`` if it exits, or after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        assert process.poll() is None, output()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer within {within_s:g} s"
        time.sleep(every_s)
