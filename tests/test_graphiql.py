"""GraphiQL, served by the gateway with no CDN (DESIGN §11).

The unit tests read the page and its assets over ASGI: every asset is served with its content
type and a year's cache, the page's integrity attributes are the files' hashes, the manifest
matches the vendored files, production has no GraphiQL. The browser test starts the gateway on
127.0.0.1 with the demo data and drives Debian's headless Chromium over the DevTools protocol,
with every host but 127.0.0.1 unreachable: GraphiQL renders, a click on Run shows v1 and v2
conversations, and no request left 127.0.0.1.

``GRAPHIQL_SCREENSHOT=docs/graphiql.png pytest tests/test_graphiql.py -k browser`` also saves
the README's screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import uuid
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth import viewer_from_header
from gateway.http.app import create_app
from gateway.http.graphiql import (
    CONTENT_SECURITY_POLICY,
    EXAMPLE_QUERY,
    EXAMPLE_VARIABLES,
    SCRIPTS,
    STATIC,
    STYLESHEETS,
    bundle,
    sri,
)
from gateway.settings import Settings
from gateway.tools.demo_content import DEMO_USER_ID
from tests.conftest import JWT_SECRET, Server, render
from tests.serving import served

ROOT = Path(__file__).resolve().parent.parent
DEVELOPMENT = Settings(jwt_secret=JWT_SECRET, env="development")
PRODUCTION = Settings(jwt_secret=JWT_SECRET, env="production", introspection=False, graphiql=False)
HTML = {"accept": "text/html,application/xhtml+xml"}


class Tags(HTMLParser):
    """The page's <link>/<script> URLs with their integrity, and its JSON config."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[tuple[str, str, str | None]] = []  # tag, url, integrity
        self.urls: list[str] = []
        self.config: dict[str, Any] | None = None
        self._in_config = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in ("src", "href"):
            url = attributes.get(name)
            if url is not None:
                self.urls.append(url)
        if tag == "script" and attributes.get("id") == "graphiql-config":
            self._in_config = True
        elif tag == "script" and attributes.get("src"):
            self.assets.append((tag, attributes["src"] or "", attributes.get("integrity")))
        elif tag == "link" and attributes.get("rel") == "stylesheet":
            self.assets.append((tag, attributes.get("href") or "", attributes.get("integrity")))

    def handle_data(self, data: str) -> None:
        if self._in_config:
            self.config = json.loads(data)
            self._in_config = False


def parse_page(text: str) -> Tags:
    tags = Tags()
    tags.feed(text)
    return tags


@contextlib.asynccontextmanager
async def asgi_client(settings: Settings, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    # No engine: nothing here reaches the database (the lifespan, which would, is not run).
    app = create_app(settings, **kwargs)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c


# --- the page and its assets ------------------------------------------------------------------


def test_the_page_opens_with_the_readme_example_query() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Example query\n", 1)[1]
    first = re.search(r"```graphql\n(.*?)```", section, re.DOTALL)
    assert first is not None
    assert first.group(1) == EXAMPLE_QUERY
    assert "$first: Int!" in EXAMPLE_QUERY and isinstance(EXAMPLE_VARIABLES["first"], int)


def test_the_manifest_matches_the_vendored_files() -> None:
    manifest = json.loads((STATIC / "manifest.json").read_text())
    packages = {(p["name"], p["version"]) for p in manifest["packages"]}
    assert {name for name, _ in packages} >= {
        "react", "react-dom", "graphiql", "@graphiql/plugin-explorer"
    }
    folders = set()
    for asset in manifest["assets"]:
        assert (asset["name"], asset["version"]) in packages
        path = STATIC / asset["file"]
        assert sri(path.read_bytes()) == asset["integrity"], asset["file"]
        folders.add(path.parent)
    # every vendored folder carries its package's licence, and nothing unlisted
    for folder in folders:
        assert (folder / "LICENSE").is_file(), folder
        listed = {a["file"] for a in manifest["assets"]}
        for path in folder.iterdir():
            assert path.relative_to(STATIC).as_posix() in listed, path
    total = sum((STATIC / a["file"]).stat().st_size for a in manifest["assets"])
    assert total < 5_000_000


async def test_every_asset_is_served_with_its_type_and_a_long_cache() -> None:
    current = bundle()
    async with asgi_client(DEVELOPMENT) as client:
        for file, asset in current.assets.items():
            response = await client.get(f"/graphiql/{current.version}/{file}")
            assert response.status_code == 200, file
            expected = {
                ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8",
            }.get(Path(file).suffix, "text/plain; charset=utf-8")
            assert response.headers["content-type"] == expected, file
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert sri(response.content) == asset.integrity, file
        # another version, an unlisted file, a way out of the folder: not found
        for path in (
            "/graphiql/0.0.0-0000000000/graphiql/graphiql.min.js",
            f"/graphiql/{current.version}/manifest.json",
            f"/graphiql/{current.version}/../__init__.py",
            f"/graphiql/{current.version}/graphiql/../../__init__.py",
            f"/graphiql/{current.version}/%2e%2e/__init__.py",
            f"/graphiql/{current.version}/graphiql%2f..%2f..%2f__init__.py",
            f"/graphiql/{current.version}/",
        ):
            response = await client.get(path, follow_redirects=True)
            assert response.status_code == 404, path
            assert "cache-control" not in response.headers or "immutable" not in response.headers[
                "cache-control"
            ]


async def test_the_page_loads_only_the_gateway_s_assets_with_their_hashes() -> None:
    current = bundle()
    async with asgi_client(DEVELOPMENT) as client:
        page = await client.get("/graphql", headers=HTML)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "default-src 'none'" in CONTENT_SECURITY_POLICY
        assert "script-src 'self'" in CONTENT_SECURITY_POLICY
        assert "connect-src 'self'" in CONTENT_SECURITY_POLICY
        tags = parse_page(page.text)
        # no absolute URL at all: nothing but the gateway (and data: for the empty icon)
        assert "://" not in page.text.replace("http://www.w3.org", "")
        for url in tags.urls:
            assert url == "data:," or url.startswith(f"graphiql/{current.version}/"), url
        assert [url for _, url, _ in tags.assets] == [
            f"graphiql/{current.version}/{f}" for f in (*STYLESHEETS, *SCRIPTS)
        ]
        for _tag, url, integrity in tags.assets:
            served = await client.get(f"/{url}")  # relative to /graphql
            assert served.status_code == 200, url
            assert integrity == sri(served.content), url
        # the example query, its variables; no token without a demo user
        assert tags.config is not None
        assert tags.config["query"] == EXAMPLE_QUERY
        assert json.loads(tags.config["variables"]) == EXAMPLE_VARIABLES
        assert "headers" not in tags.config
        assert "Bearer" not in page.text
        # an API client's GET without a query is still a GraphQL error, not the page
        response = await client.get("/graphql", headers={"accept": "application/json"})
        assert response.status_code == 400


async def test_the_demo_user_s_token_is_in_the_development_page() -> None:
    async with asgi_client(DEVELOPMENT, graphiql_user=DEMO_USER_ID) as client:
        page = await client.get("/graphql", headers=HTML)
    tags = parse_page(page.text)
    assert tags.config is not None
    headers = json.loads(tags.config["headers"])
    viewer = viewer_from_header(headers["Authorization"], DEVELOPMENT)
    assert str(viewer.user_id) == DEMO_USER_ID
    assert viewer.role == "authenticated"


async def test_production_has_no_graphiql() -> None:
    current = bundle()
    async with asgi_client(PRODUCTION, graphiql_user=DEMO_USER_ID) as client:
        response = await client.get("/graphql", headers=HTML)
        assert response.status_code == 400
        assert "text/html" not in response.headers["content-type"]
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        for file in (*STYLESHEETS, *SCRIPTS):
            response = await client.get(f"/graphiql/{current.version}/{file}")
            assert response.status_code == 404, file
    # GraphiQL turned on in production by hand: the page, never a token
    forced = Settings(jwt_secret=JWT_SECRET, env="production", graphiql=True)
    async with asgi_client(forced, graphiql_user=DEMO_USER_ID) as client:
        page = await client.get("/graphql", headers=HTML)
    assert page.status_code == 200
    assert "Bearer" not in page.text
    assert "headers" not in (parse_page(page.text).config or {})


@pytest.mark.parametrize(
    ("graphiql", "line"),
    [(True, "GraphiQL: http://127.0.0.1:8123/graphql"),
     (False, "GraphQL endpoint: http://127.0.0.1:8123/graphql")],
)
def test_the_start_up_line_claims_graphiql_only_when_it_is_on(
    graphiql: bool, line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    from gateway.tools.cli import serve

    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.append(app))
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    settings = Settings(
        jwt_secret=JWT_SECRET,
        env="production" if not graphiql else "development",
        graphiql=graphiql,
        database_url="postgresql://authenticator@127.0.0.1:1/none",
    )
    serve.run_server(settings, "127.0.0.1", 8123, 1, False)
    out = capsys.readouterr().out
    assert line in out
    if not graphiql:
        assert "GraphiQL" not in out
    assert len(served) == 1


# --- in a real browser --------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """A minimal Chrome DevTools Protocol client over one target's websocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.next_id = 0
        self.reader = asyncio.create_task(self.read())

    async def read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if "id" in message:
                future = self.pending.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
            else:
                self.events.append(message)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        message = await asyncio.wait_for(future, 30)
        if "error" in message:
            raise AssertionError(f"{method}: {message['error']}")
        result: dict[str, Any] = message["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, seconds: float = 30) -> Any:
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; events: {self.problems()}")
            await asyncio.sleep(0.1)

    def named(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.events if e["method"] == method]

    def problems(self) -> list[Any]:
        """Script exceptions, console errors (CSP and SRI refusals among them), failed loads."""
        found: list[Any] = [e["exceptionDetails"] for e in self.named("Runtime.exceptionThrown")]
        logged = [e["entry"] for e in self.named("Log.entryAdded")]
        found += [entry for entry in logged if entry["level"] == "error"]
        found += [e for e in self.named("Runtime.consoleAPICalled") if e["type"] == "error"]
        found += self.named("Network.loadingFailed")
        return found

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reader


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium with no network beyond 127.0.0.1: every other host goes to a closed
    proxy port and resolves to nothing."""
    from websockets.asyncio.client import connect

    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-quic",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--window-size=1280,800",
        f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    devtools: DevTools | None = None
    try:
        active = profile / "DevToolsActivePort"
        for _ in range(300):
            if active.exists() and len(active.read_text().splitlines()) >= 2:
                break
            if process.returncode is not None:
                raise AssertionError(f"chromium exited with {process.returncode}")
            await asyncio.sleep(0.1)
        port = int(active.read_text().splitlines()[0])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            target = (await client.put("/json/new?about:blank")).json()
        ws = await connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        devtools = DevTools(ws)
        for domain in ("Page", "Network", "Runtime", "Log"):
            await devtools.send(f"{domain}.enable")
        await devtools.send(
            "Emulation.setDeviceMetricsOverride",
            width=1280, height=800, deviceScaleFactor=1, mobile=False,
        )
        yield devtools
    finally:
        if devtools is not None:
            await devtools.close()
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, engine: AsyncEngine, lifespan: str = "off", **kwargs: Any
) -> AsyncIterator[str]:
    """The app on a free 127.0.0.1 port, in this event loop; yields its base URL."""
    async with served(create_app(settings, engine=engine, **kwargs), lifespan=lifespan) as port:
        yield f"http://127.0.0.1:{port}"


EDITOR_VALUE = """(() => {{
  const editor = document.querySelector({selector});
  return editor && editor.CodeMirror ? editor.CodeMirror.getValue() : null;
}})()"""
HEADERS_VALUE = """(() => {
  for (const editor of document.querySelectorAll('.graphiql-editor-tool .CodeMirror')) {
    const value = editor.CodeMirror && editor.CodeMirror.getValue();
    if (value && value.includes('Authorization')) return value;
  }
  return null;
})()"""


def save_png(path: str, data: str) -> None:
    Path(path).write_bytes(base64.b64decode(data))


async def test_graphiql_runs_a_query_in_a_browser_without_network(
    server: Server, database: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    from gateway.tools.demo import seed_demo

    await seed_demo(render(server.database_url(database)), scale=1)
    async with (
        serving(DEVELOPMENT, engine, graphiql_user=DEMO_USER_ID) as base,
        chromium(tmp_path / "chromium") as browser,
    ):
        await browser.send("Page.navigate", url=f"{base}/graphql")
        # GraphiQL rendered, with the README's query and the demo user's token
        query_editor = EDITOR_VALUE.format(selector="'.graphiql-query-editor .CodeMirror'")
        assert await browser.wait_for(query_editor, "GraphiQL's query editor") == EXAMPLE_QUERY
        headers = json.loads(await browser.wait_for(HEADERS_VALUE, "the headers editor"))
        assert headers["Authorization"].startswith("Bearer ")
        # the first click on Run
        await browser.wait_for("!!document.querySelector('.graphiql-execute-button')", "Run")
        await browser.evaluate("document.querySelector('.graphiql-execute-button').click()")
        result_editor = EDITOR_VALUE.format(selector="'.graphiql-response .CodeMirror'")
        text = await browser.wait_for(
            f"(() => {{ const v = {result_editor}; return v && v.includes('totalCount') ? v : null"
            " })()",
            "the query's result",
        )
        result = json.loads(text)
        assert "errors" not in result, result
        edges = result["data"]["conversations"]["edges"]
        assert {e["node"]["source"] for e in edges} == {"V1", "V2"}
        # ... and it is in the DOM, as a person sees it
        shown = await browser.evaluate("document.querySelector('.graphiql-response').innerText")
        assert '"conversations"' in shown and '"totalCount"' in shown
        assert await browser.evaluate("!!document.querySelector('.graphiql-container')")
        if os.environ.get("GRAPHIQL_SCREENSHOT"):
            await asyncio.sleep(0.5)
            shot = await browser.send("Page.captureScreenshot", format="png")
            save_png(os.environ["GRAPHIQL_SCREENSHOT"], shot["data"])
        # nothing but 127.0.0.1, nothing refused, nothing failed
        requests = [e["request"] for e in browser.named("Network.requestWillBeSent")]
        urls = [r["url"] for r in requests]
        outside = [u for u in urls if not u.startswith(f"{base}/") and not u.startswith("data:")]
        assert outside == [], outside
        current = bundle()
        for file in (*STYLESHEETS, *SCRIPTS):
            assert f"{base}/graphiql/{current.version}/{file}" in urls, file
        runs = [
            r for r in requests
            if r["method"] == "POST" and "query Reference" in r.get("postData", "")
        ]
        assert len(runs) == 1
        assert runs[0]["headers"].get("Authorization", "").startswith("Bearer ")
        statuses = {
            e["response"]["url"]: e["response"]["status"]
            for e in browser.named("Network.responseReceived")
        }
        assert all(status == 200 for status in statuses.values()), statuses
        assert browser.problems() == []


SET_QUERY = """(() => {{
  document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue({query});
  return true;
}})()"""


async def test_graphiql_streams_a_subscription_without_network(
    server: Server, database: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """A subscription run in GraphiQL is streamed over Server-Sent Events by the page's own
    fetcher (no WebSocket client library to vendor): a message written by SQL shows up."""
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    from gateway.tools.demo import seed_demo
    from tests.graphql import gid

    await seed_demo(render(server.database_url(database)), scale=1)
    owner = await server.connect(database)
    try:
        conversation = await owner.fetchval(
            "SELECT id FROM v2_conversations WHERE user_id = $1 LIMIT 1", uuid.UUID(DEMO_USER_ID)
        )
        query = (f'subscription Live {{ messageAdded(conversationId: '
                 f'"{gid("V2Conversation", conversation)}") {{ text source }} }}')
        async with (
            serving(DEVELOPMENT, engine, lifespan="on", graphiql_user=DEMO_USER_ID) as base,
            chromium(tmp_path / "chromium") as browser,
        ):
            await browser.send("Page.navigate", url=f"{base}/graphql")
            query_editor = EDITOR_VALUE.format(selector="'.graphiql-query-editor .CodeMirror'")
            await browser.wait_for(query_editor, "GraphiQL's query editor")
            await browser.evaluate(SET_QUERY.format(query=json.dumps(query)))
            await browser.wait_for(HEADERS_VALUE, "the headers editor")

            def streams() -> list[dict[str, Any]]:
                return [
                    e["request"] for e in browser.named("Network.requestWillBeSent")
                    if "subscription Live" in e["request"].get("postData", "")
                ]

            # GraphiQL takes the new text's operation name a moment after the edit (until then
            # it sends the old one, which the gateway refuses): Run after a pause, and again
            # only when no stream went out (a second click on a running one would stop it)
            for _ in range(3):
                await asyncio.sleep(1.0)
                await browser.evaluate(
                    "document.querySelector('.graphiql-execute-button').click()"
                )
                for _ in range(50):
                    if streams():
                        break
                    await asyncio.sleep(0.1)
                if streams():
                    break
            assert streams(), await browser.evaluate(query_editor)
            result_editor = EDITOR_VALUE.format(selector="'.graphiql-response .CodeMirror'")
            seen = (f"(() => {{ const v = {result_editor}; "
                    "return v && v.includes('live ') ? v : null })()")
            text = None
            for attempt in range(60):  # until the subscription is in place
                await owner.execute(
                    "INSERT INTO v2_messages (conversation_id, user_id, role, message) "
                    "VALUES ($1, $2, 'user', $3)",
                    conversation, uuid.UUID(DEMO_USER_ID), f"live {attempt}",
                )
                text = await browser.evaluate(seen)
                if text:
                    break
                await asyncio.sleep(0.5)
            assert text, (browser.problems(), await browser.evaluate(result_editor))
            shown = json.loads(text)["data"]["messageAdded"]
            assert shown["text"].startswith("live ") and shown["source"] == "V2"
            sent = streams()
            assert sent and sent[0]["headers"]["Accept"] == "text/event-stream"
            assert sent[0]["headers"].get("Authorization", "").startswith("Bearer ")
            assert browser.problems() == []
    finally:
        await owner.close()


def test_every_worker_s_page_carries_the_demo_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """serve --workers N: the workers build their apps from the environment (the ASGI entry);
    the demo user is passed there too, so the page has its token whichever worker answers."""
    import uvicorn

    from gateway.tools.cli import serve

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    for name in ("GATEWAY_GRAPHIQL_USER", "DATABASE_URL", "JWT_SECRET"):  # put back after
        monkeypatch.delenv(name, raising=False)
    settings = Settings(jwt_secret=JWT_SECRET, env="development",
                        database_url="postgresql://authenticator@127.0.0.1:1/none")
    serve.run_server(settings, "127.0.0.1", 8123, 2, False, graphiql_user=DEMO_USER_ID)
    capsys.readouterr()
    assert Settings.from_env().graphiql_user == DEMO_USER_ID  # what each worker reads
