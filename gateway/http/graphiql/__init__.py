"""GraphiQL served by the gateway itself, with no CDN (DESIGN §11).

``GET /graphql`` from a browser (``Accept: text/html``, no ``query``) is a small page that loads
React, ReactDOM, GraphiQL and its explorer plugin from ``/graphiql/<version>/…``: files that come
with the package (``static/``, vendored from their npm packages by
``python -m gateway.http.graphiql.vendor``, each with its licence; ``static/manifest.json``
records their versions and sha384 hashes). ``<version>`` changes whenever any file does, so the
assets are cached for a year; every ``<script>`` and ``<link>`` carries its ``integrity``. The
page's Content-Security-Policy lets it load and fetch from the gateway only.

It opens with the README's example query and, when the gateway was given a demo user (the
CLI's ``serve`` on the embedded demo data, development only), that user's token in its
headers. The app mounts none of this when ``settings.graphiql`` is false (production).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway.auth import issue_token
from gateway.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "graphiql"

# The README's "Example query" (tests/test_graphiql.py holds the two equal).
EXAMPLE_QUERY = """\
query Reference($first: Int!) {
  conversations(first: $first, filter: {includeMigrated: true}) {
    totalCount
    edges { cursor node {
      id source title lastMessageAt messageCount
      owner { id fullName }
      documents { id title zone { code } city { name } }
      ... on V1Conversation { document { id title typology { name } } migration { status } }
      ... on V2Conversation { project { id name mainCity { name } mainZone { code } } }
      messages(first: 10) { edges { node { id source role text createdAt
        author { id } replyTo { id } documents { id title city { name } } } } }
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
EXAMPLE_VARIABLES = {"first": 5}

# The demo user's token in the page lives as long as the CLI's printed ones.
TOKEN_TTL_S = 24 * 3600

# In the order the page loads them: React before ReactDOM before GraphiQL before the plugin.
STYLESHEETS = ("graphiql/graphiql.min.css", "plugin-explorer/style.css", "page/graphiql-page.css")
SCRIPTS = (
    "react/react.production.min.js",
    "react-dom/react-dom.production.min.js",
    "graphiql/graphiql.min.js",
    "plugin-explorer/index.umd.js",
    "page/graphiql-page.js",
)
# The gateway's own files (not vendored): hashed when the app starts.
OWN_FILES = ("page/graphiql-page.css", "page/graphiql-page.js")

CACHE_FOREVER = "public, max-age=31536000, immutable"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        # React sets style attributes; the fonts and icons are data: URLs inside the CSS.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


def sri(data: bytes) -> str:
    """A Subresource Integrity value (sha384) of ``data``."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def content_type(file: str) -> str:
    return CONTENT_TYPES.get(Path(file).suffix, "text/plain; charset=utf-8")


@dataclass(frozen=True)
class Asset:
    file: str  # path under static/, and under /graphiql/<version>/
    name: str  # the npm package (or "mwplu-gateway" for the page's own files)
    version: str
    integrity: str

    @property
    def content_type(self) -> str:
        return content_type(self.file)


@dataclass(frozen=True)
class Bundle:
    version: str  # the path segment: GraphiQL's version and a digest of every file
    assets: Mapping[str, Asset]

    def href(self, file: str) -> str:
        """The asset's URL relative to ``/graphql`` (so a path prefix in front works too)."""
        return f"{PREFIX}/{self.version}/{file}"


@functools.cache
def bundle() -> Bundle:
    manifest = json.loads((STATIC / "manifest.json").read_text())
    assets = {
        entry["file"]: Asset(entry["file"], entry["name"], entry["version"], entry["integrity"])
        for entry in manifest["assets"]
    }
    for file in OWN_FILES:
        assets[file] = Asset(file, "mwplu-gateway", "", sri((STATIC / file).read_bytes()))
    graphiql = next(a.version for a in assets.values() if a.name == "graphiql")
    digest = hashlib.sha256("\n".join(sorted(a.integrity for a in assets.values())).encode())
    return Bundle(f"{graphiql}-{digest.hexdigest()[:10]}", assets)


@functools.cache
def read_asset(file: str) -> bytes:
    return (STATIC / file).read_bytes()


def _script_json(value: object) -> str:
    """JSON safe inside a ``<script type="application/json">`` element."""
    text = orjson.dumps(value).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class GraphiQLPage:
    """The page and its assets. ``demo_user``: a user id whose token the page carries in its
    headers (ignored in production)."""

    def __init__(self, settings: Settings, demo_user: str | None = None) -> None:
        self.settings = settings
        self.demo_user = None if settings.production else demo_user
        self.bundle = bundle()

    def routes(self) -> list[Route]:
        return [Route(f"/{PREFIX}/{{version}}/{{file:path}}", self.asset, methods=["GET"])]

    def headers_text(self) -> str | None:
        if self.demo_user is None or not self.settings.jwt_secret:
            return None
        token = issue_token(self.settings, self.demo_user, ttl_s=TOKEN_TTL_S)
        return json.dumps({"Authorization": f"Bearer {token}"}, indent=2)

    def render(self) -> str:
        config: dict[str, object] = {
            "query": EXAMPLE_QUERY,
            "variables": json.dumps(EXAMPLE_VARIABLES, indent=2),
        }
        headers = self.headers_text()
        if headers is not None:
            config["headers"] = headers
        links = "\n".join(
            f'<link rel="stylesheet" href="{html.escape(self.bundle.href(f))}" '
            f'integrity="{self.bundle.assets[f].integrity}" crossorigin="anonymous">'
            for f in STYLESHEETS
        )
        scripts = "\n".join(
            f'<script src="{html.escape(self.bundle.href(f))}" '
            f'integrity="{self.bundle.assets[f].integrity}" crossorigin="anonymous"></script>'
            for f in SCRIPTS
        )
        return PAGE.format(links=links, scripts=scripts, config=_script_json(config))

    def page(self) -> Response:
        return HTMLResponse(
            self.render(),
            headers={
                # The page may carry a token: never stored by the browser or a proxy.
                "cache-control": "no-store",
                "content-security-policy": CONTENT_SECURITY_POLICY,
                "referrer-policy": "no-referrer",
                "x-content-type-options": "nosniff",
                "x-frame-options": "DENY",
            },
        )

    async def asset(self, request: Request) -> Response:
        version = request.path_params["version"]
        asset = self.bundle.assets.get(request.path_params["file"])
        if version != self.bundle.version or asset is None:
            return PlainTextResponse("not found", status_code=404)
        return Response(
            read_asset(asset.file),
            media_type=asset.content_type,
            headers={
                "cache-control": CACHE_FOREVER,
                "x-content-type-options": "nosniff",
                "cross-origin-resource-policy": "same-origin",
            },
        )


PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mwplu-gateway · GraphiQL</title>
<link rel="icon" href="data:,">
{links}
<script id="graphiql-config" type="application/json">{config}</script>
</head>
<body>
<div id="graphiql">Loading…</div>
{scripts}
</body>
</html>
"""
