"""Request heads are bounded by the server the gateway runs on (issue 16, item 7; DESIGN §11):
too many or too large header fields are 431 and the connection is closed, without the worker's
memory growing; a head sent too slowly (or never) is closed after ``GATEWAY_HEADER_TIMEOUT_S``;
ordinary requests are untouched. Each case runs against a real ``mwplu-gateway serve`` process
over raw sockets, and the main ones also against ``serve --workers 2`` and the documented
``uvicorn gateway.http.asgi:app --http gateway.http.protocol:HeadBoundedProtocol``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from gateway.http.protocol import PROTOCOL
from gateway.settings import Settings, SettingsError
from tests.conftest import JWT_SECRET, Server, bearer, create_database, drop_database, render
from tests.serving import free_port, wait_until_answering

HEADER_TIMEOUT_S = 1.0
USER = "0b9c5a52-3f0e-4d8e-9a55-7d3b1f4a2c61"
QUERY = b'{"query": "{ cities(first: 1) { totalCount } }"}'
MB = 1024 * 1024
HOST = b"Host: 127.0.0.1"


@pytest.fixture(scope="module")
async def database(server: Server, template: str) -> AsyncIterator[str]:
    """One database for the module: nothing here writes rows."""
    name = await create_database(server, template)
    yield name
    await drop_database(server, name)


@dataclass(frozen=True)
class Gateway:
    port: int
    pid: int
    log: Path

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")


@contextmanager
def running(argv: list[str], url: str, log: Path) -> Iterator[Gateway]:
    """A gateway process on a free 127.0.0.1 port, its stderr in ``log``."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(log.parent),
        "LANG": "C.UTF-8",
        "DATABASE_URL": url,
        "JWT_SECRET": JWT_SECRET,
        "GATEWAY_ENV": "test",
        "GATEWAY_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    }
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, *argv, "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/healthz", process, within_s=60,
                             every_s=0.1, output=log.read_text)
        yield Gateway(port, process.pid, log)
    finally:
        process.terminate()
        process.wait(timeout=30)


SERVE = ["-m", "gateway.tools.cli", "serve"]
ENTRIES = {
    "serve --workers 2": [*SERVE, "--workers", "2"],
    "uvicorn --http": ["-m", "uvicorn", "gateway.http.asgi:app", "--http", PROTOCOL],
}


@pytest.fixture(scope="module")
def gateway(
    server: Server, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """``mwplu-gateway serve``, one worker: the process answering is the worker."""
    url = render(server.database_url(database, "authenticator"))
    with running(SERVE, url, tmp_path_factory.mktemp("serve") / "stderr.log") as served:
        yield served


def test_the_bounds_are_settings() -> None:
    limits = Settings.from_env({}).limits
    assert (limits.max_header_bytes, limits.max_headers, limits.header_timeout_s) == (
        16 * 1024, 100, 10.0,
    )
    custom = Settings.from_env({
        "GATEWAY_MAX_HEADER_BYTES": "8192",
        "GATEWAY_MAX_HEADERS": "50",
        "GATEWAY_HEADER_TIMEOUT_S": "2.5",
    }).limits
    assert (custom.max_header_bytes, custom.max_headers, custom.header_timeout_s) == (
        8192, 50, 2.5,
    )
    with pytest.raises(SettingsError, match="GATEWAY_HEADER_TIMEOUT_S must be"):
        Settings.from_env({"GATEWAY_HEADER_TIMEOUT_S": "soon"})


# --- raw HTTP ------------------------------------------------------------------------------------


def head(fields: Sequence[bytes], target: bytes = b"/graphql", method: bytes = b"POST") -> bytes:
    lines = b"".join(field + b"\r\n" for field in (HOST, *fields))
    return b"%s %s HTTP/1.1\r\n%s\r\n" % (method, target, lines)


def post_fields(extra: Sequence[bytes] = ()) -> list[bytes]:
    return [
        b"Content-Type: application/json",
        b"Authorization: " + bearer(USER)["Authorization"].encode(),
        b"Content-Length: %d" % len(QUERY),
        *extra,
    ]


def post(extra: Sequence[bytes] = ()) -> bytes:
    return head(post_fields(extra)) + QUERY


def field_bytes(fields: Sequence[bytes]) -> int:
    """What the bound counts: names and values (``Name: value`` less the ``: ``), Host's too."""
    return sum(len(field) - 2 for field in (HOST, *fields))


_unread: weakref.WeakKeyDictionary[socket.socket, bytes] = weakref.WeakKeyDictionary()


def read_response(sock: socket.socket) -> tuple[int, dict[bytes, bytes], bytes]:
    """One response (status, headers, body by Content-Length). What was received past it (the
    next of pipelined responses, in the same packet) is kept for the next call."""
    data = _unread.pop(sock, b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    raw_head, body = data.split(b"\r\n\r\n", 1)
    status_line, *fields = raw_head.split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (f.split(b":", 1) for f in fields)}
    length = int(headers.get(b"content-length", b"0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed in the body"
        body += chunk
    body, _unread[sock] = body[:length], body[length:]
    return int(status_line.split()[1]), headers, body


def closed(sock: socket.socket, within_s: float) -> bool:
    """True when the server closes (EOF or reset) within ``within_s``; anything it sends first
    is read and dropped."""
    deadline = time.monotonic() + within_s
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def refusal(gateway: Gateway, request: bytes) -> tuple[int, bytes, bool]:
    """Send ``request`` whole (from a thread: the server may answer before it is all sent), read
    the answer; also whether the server then closed the connection."""
    with gateway.connect() as sock:
        errors: list[OSError] = []

        def send() -> None:
            try:
                sock.sendall(request)
            except OSError as exc:  # the server stopped reading: its answer is what counts
                errors.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        try:
            status, headers, body = read_response(sock)
            was_closed = closed(sock, 10)
        finally:
            sender.join(30)
        assert headers.get(b"connection") == b"close"
        return status, body, was_closed


def answered(gateway: Gateway, request: bytes) -> tuple[int, bytes]:
    with gateway.connect() as sock:
        sock.sendall(request)
        status, _headers, body = read_response(sock)
        return status, body


# --- size and count -----------------------------------------------------------------------------


def test_a_normal_request_with_normal_headers_is_answered(gateway: Gateway) -> None:
    browser_like = [
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0",
        b"Accept: application/graphql-response+json, application/json;q=0.9",
        b"Accept-Language: fr-FR,fr;q=0.9,en;q=0.8",
        b"Accept-Encoding: gzip, deflate, br",
        b"Origin: http://127.0.0.1",
        b"Referer: http://127.0.0.1/app",
        b"Cookie: " + b"; ".join(b"c%d=%s" % (i, b"v" * 200) for i in range(20)),  # ~4 KB
        b"X-Request-Id: header-limits-1",
        *(b"X-Extra-%d: %d" % (i, i) for i in range(40)),
    ]
    status, body = answered(gateway, post(browser_like))
    assert status == 200, body
    assert orjson.loads(body)["data"]["cities"]["totalCount"] >= 0


def test_serve_prints_each_requests_log_line(gateway: Gateway) -> None:
    """The request log (README: one JSON line per request) reaches ``serve``'s stderr, not
    only a logger nothing prints."""
    status, _ = answered(gateway, post([b"X-Request-Id: request-log-line-1"]))
    assert status == 200
    deadline = time.monotonic() + 5
    while True:
        logged = [
            orjson.loads(line) for line in gateway.log.read_text().splitlines()
            if line.startswith("{")
        ]
        mine = [entry for entry in logged if entry.get("request_id") == "request-log-line-1"]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(mine) == 1, logged
    assert mine[0]["outcome"] == "ok" and mine[0]["operation_type"] == "query"


def write_syscalls(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError("no syscw")


def test_a_response_is_written_in_one_send(gateway: Gateway) -> None:
    """Head and body go out together (``gateway.http.protocol.WritesTogether``): the worker's
    write system calls per request are the response's one and the request log line's."""
    body = b'{"query": "{ __typename }"}'
    request = head([b"Content-Type: application/json", b"Content-Length: %d" % len(body)]) + body
    with gateway.connect() as sock:
        sock.sendall(request)
        assert read_response(sock)[0] == 200
        time.sleep(0.2)  # the first request's log line written
        before = write_syscalls(gateway.pid)
        for _ in range(50):
            sock.sendall(request)
            status, headers, answer = read_response(sock)
            assert status == 200 and orjson.loads(answer) == {"data": {"__typename": "Query"}}
            assert headers[b"content-type"].startswith(b"application/json")
        time.sleep(0.2)
        # 3 before: the head and the body apart (a margin for a write of the worker's own)
        assert (write_syscalls(gateway.pid) - before) / 50 < 2.5


def read_heads(sock: socket.socket, count: int = 1) -> bytes:
    """What arrives until ``count`` heads have ended (responses without a body: HEAD's, an
    interim 100), or the connection closes."""
    data = b""
    while data.count(b"\r\n\r\n") < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_head_response_arrives_before_the_next_answer(gateway: Gateway) -> None:
    """A HEAD response is a head alone, the write held to go out with a body that never
    comes: it is sent, and before the answer to the request after it (a refusal included)."""
    head_request = head([], target=b"/healthz", method=b"HEAD")
    with gateway.connect() as sock:
        sock.sendall(head_request)
        data = read_heads(sock)
        assert data.startswith(b"HTTP/1.1 200 "), data
        sock.sendall(post())
        status, _headers, body = read_response(sock)
        assert status == 200, body
    with gateway.connect() as sock:
        # pipelined: the HEAD's answer, then the refusal of a head over the bound
        huge = head([b"X-Huge: " + b"h" * (MB // 2)])
        sock.sendall(head_request + huge)
        data = read_heads(sock, 2)
        assert data.startswith(b"HTTP/1.1 200 "), data[:200]
        assert b"HTTP/1.1 431 " in data.split(b"\r\n\r\n", 1)[1], data[:400]


def test_a_response_then_its_close_and_a_continue_then_its_response(gateway: Gateway) -> None:
    """``Connection: close``: the whole response, then the close; ``Expect: 100-continue``:
    the interim answer, then the response."""
    with gateway.connect() as sock:
        sock.sendall(post([b"Connection: close"]))
        status, headers, body = read_response(sock)
        assert status == 200 and orjson.loads(body)["data"], body
        assert headers.get(b"connection") == b"close"
        assert closed(sock, 5)
    with gateway.connect() as sock:
        sock.sendall(head(post_fields([b"Expect: 100-continue"])))
        interim = read_heads(sock)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
        _unread[sock] = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        sock.sendall(QUERY)
        status, _headers, body = read_response(sock)
        assert status == 200 and orjson.loads(body)["data"], body


def test_a_response_is_whole_when_the_request_after_it_is_refused(gateway: Gateway) -> None:
    """A head over the bound pipelined behind a request: that request's response is sent
    whole, then the connection closes (no room for the refusal's answer)."""
    with gateway.connect() as sock:
        sock.sendall(post() + head([b"X-Huge: " + b"h" * (MB // 2)]))
        status, _headers, body = read_response(sock)
        assert status == 200 and orjson.loads(body)["data"], body
        assert closed(sock, 5)


def test_the_largest_head_within_the_bounds_is_answered(gateway: Gateway) -> None:
    # 100 fields (Host, post()'s three and 96 more) of 16 KiB of names and values in all
    fillers = [b"X-Filler-%02d: %s" % (i, b"f" * 150) for i in range(96)]
    fillers[-1] += b"g" * (16 * 1024 - field_bytes(post_fields(fillers)))
    assert field_bytes(post_fields(fillers)) == 16 * 1024
    status, body = answered(gateway, post(fillers))
    assert status == 200, body
    fillers[-1] += b"g"
    status, body, was_closed = refusal(gateway, post(fillers))
    assert (status, was_closed) == (431, True)


def test_a_one_megabyte_header_is_431_and_the_connection_closed(gateway: Gateway) -> None:
    status, body, was_closed = refusal(gateway, post([b"X-Big: " + b"a" * MB]))
    assert status == 431
    assert b"16384 bytes" in body
    assert was_closed


def test_huge_headers_do_not_grow_the_worker(gateway: Gateway) -> None:
    # The figures: a 64 MB header took the worker from 97 to 222 MB, four at once 388.
    answered(gateway, post())
    before = gateway.rss_mb()
    request = post([b"X-Big: " + b"a" * (16 * MB)])
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: refusal(gateway, request), range(4)))
    assert [status for status, _body, _closed in results] == [431] * 4
    assert gateway.rss_mb() - before < 16, (before, gateway.rss_mb())


def test_ten_thousand_header_lines_are_431(gateway: Gateway) -> None:
    status, body, was_closed = refusal(gateway, post([b"X-L: %d" % i for i in range(10_000)]))
    assert (status, was_closed) == (431, True)
    assert b"More than 100 request header fields" in body


def test_one_field_more_than_the_bound_is_431(gateway: Gateway) -> None:
    ninety_six = [b"X-L: %d" % i for i in range(96)]  # + Host and the three of post()
    assert answered(gateway, post(ninety_six))[0] == 200
    status, _body, was_closed = refusal(gateway, post([*ninety_six, b"X-L: one more"]))
    assert (status, was_closed) == (431, True)


def test_a_request_target_over_64_kib_is_414(gateway: Gateway) -> None:
    # httptools parses no longer target: uvicorn answered 400 once it had read it all
    target = b"/graphql?query=" + b"x" * (MB - 15)
    status, _body, was_closed = refusal(gateway, head([], target=target, method=b"GET"))
    assert (status, was_closed) == (414, True)
    longest = b"/graphql?query=%7B__typename%7D%23" + b"x" * (65535 - 34)
    status, body = answered(gateway, head([], target=longest, method=b"GET"))
    assert (status, orjson.loads(body)) == (200, {"data": {"__typename": "Query"}})
    status, _body, _closed = refusal(gateway, head([], target=longest + b"x", method=b"GET"))
    assert status == 414


def test_a_chunked_body_is_411_before_its_trailers_can_grow(gateway: Gateway) -> None:
    """Trailer fields after a chunked body are gathered by the parser past every bound of the
    head (24 MB of one grew the worker by 24 MB, with no answer and no timeout)."""
    fields = [b"Content-Type: application/json", b"Transfer-Encoding: chunked"]
    trailer = b"%x\r\n%s\r\n0\r\nX-Trailer: " % (len(QUERY), QUERY) + b"a" * MB
    status, body, was_closed = refusal(gateway, head(fields) + trailer)
    assert status == 411
    assert b"Content-Length" in body
    assert was_closed


def test_pipelined_requests_with_large_bodies_are_answered(gateway: Gateway) -> None:
    # The head's byte count must not take in the end of the request before it.
    query = orjson.dumps({"query": "#" + "p" * 40_000 + "\n{ __typename }"})
    one = head([b"Content-Type: application/json", b"Content-Length: %d" % len(query)]) + query
    with gateway.connect() as sock:
        sock.sendall(one * 3)
        for _ in range(3):
            status, _headers, body = read_response(sock)
            assert (status, orjson.loads(body)) == (200, {"data": {"__typename": "Query"}})


# --- time ---------------------------------------------------------------------------------------


def trickle(sock: socket.socket, data: bytes, every_s: float, for_s: float) -> float | None:
    """Send ``data`` a byte at a time; the seconds until the server closed, or None."""
    start = time.monotonic()
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start
        if closed(sock, every_s):
            return time.monotonic() - start
        if time.monotonic() - start > for_s:
            return None
    raise AssertionError("ran out of bytes to trickle")


SLOW_HEAD = b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 10_000


def test_a_head_sent_a_byte_at_a_time_is_closed_after_the_timeout(gateway: Gateway) -> None:
    with gateway.connect() as sock:
        after = trickle(sock, SLOW_HEAD, every_s=0.1, for_s=HEADER_TIMEOUT_S + 5)
    assert after is not None, "still open"
    assert HEADER_TIMEOUT_S - 0.2 < after < HEADER_TIMEOUT_S + 3


def test_the_next_head_on_a_kept_alive_connection_is_timed_too(gateway: Gateway) -> None:
    with gateway.connect() as sock:
        sock.sendall(post())
        assert read_response(sock)[0] == 200
        after = trickle(sock, SLOW_HEAD, every_s=0.1, for_s=HEADER_TIMEOUT_S + 5)
    assert after is not None, "still open"
    assert after < HEADER_TIMEOUT_S + 3


def test_a_connection_that_sends_nothing_is_closed_after_the_timeout(gateway: Gateway) -> None:
    with gateway.connect() as sock:
        start = time.monotonic()
        assert closed(sock, HEADER_TIMEOUT_S + 5)
        assert time.monotonic() - start > HEADER_TIMEOUT_S - 0.2


def test_a_head_sent_in_pieces_within_the_timeout_is_answered(gateway: Gateway) -> None:
    request = post()
    with gateway.connect() as sock:
        for piece in (request[:10], request[10:60], request[60:]):
            sock.sendall(piece)
            time.sleep(HEADER_TIMEOUT_S / 5)
        assert read_response(sock)[0] == 200


# --- the other ways the gateway is served --------------------------------------------------------


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_every_entry_point_bounds_heads(
    entry: str, server: Server, database: str, tmp_path: Path
) -> None:
    url = render(server.database_url(database, "authenticator"))
    with running(ENTRIES[entry], url, tmp_path / "stderr.log") as served:
        assert answered(served, post())[0] == 200
        assert refusal(served, post([b"X-Big: " + b"a" * MB]))[0] == 431
        assert refusal(served, post([b"X-L: %d" % i for i in range(10_000)]))[0] == 431
        with served.connect() as sock:
            after = trickle(sock, SLOW_HEAD, every_s=0.1, for_s=HEADER_TIMEOUT_S + 5)
        assert after is not None, "still open"
    assert "not bounded" not in served.log.read_text()


def test_uvicorn_without_the_protocol_says_heads_are_unbounded(
    server: Server, database: str, tmp_path: Path
) -> None:
    url = render(server.database_url(database, "authenticator"))
    bare = ["-m", "uvicorn", "gateway.http.asgi:app"]
    with running(bare, url, tmp_path / "stderr.log") as served:
        assert answered(served, post())[0] == 200
        assert answered(served, post())[0] == 200
    log = served.log.read_text()
    assert log.count("request heads are not bounded") == 1, log
    assert PROTOCOL in log
