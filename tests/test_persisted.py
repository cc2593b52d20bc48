"""Persisted operations over HTTP (DESIGN §11): Apollo's automatic persisted queries, and a
trusted-documents manifest that is the only set of operations the gateway runs."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.http.app import create_app
from gateway.http.persisted import ManifestError, load_manifest
from gateway.settings import Settings
from tests.conftest import JWT_SECRET

QUERY = "{ cities(first: 1) { totalCount } }"
OTHER = "{ documents(first: 1) { totalCount } }"


def sha(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def persisted(digest: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def post(client: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await client.post("/graphql", json=body, headers=headers)


@pytest.fixture
def settings() -> Settings:
    return Settings(jwt_secret=JWT_SECRET, env="production", introspection=False,
                    graphiql=False, database_url="postgresql://unused/x")


async def gateway(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        yield client


@pytest.fixture
async def apq(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in gateway(engine, settings):
        yield client


async def test_automatic_persisted_queries(apq: httpx.AsyncClient) -> None:
    # an unknown hash without its query: the client is asked for it
    unknown = await post(apq, {"extensions": persisted(sha(QUERY))})
    assert unknown.status_code == 200
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    strict = await post(apq, {"extensions": persisted(sha(QUERY))},
                        accept="application/graphql-response+json")
    assert strict.status_code == 400 and "data" not in strict.json()
    # registration: the query with its hash runs and is remembered
    registered = await post(apq, {"query": QUERY, "extensions": persisted(sha(QUERY))})
    assert registered.json() == {"data": {"cities": {"totalCount": 0}}}
    # then the hash alone is enough
    hit = await post(apq, {"extensions": persisted(sha(QUERY))})
    assert hit.json() == {"data": {"cities": {"totalCount": 0}}}
    # a query that does not match its hash is refused, and not remembered
    wrong = await post(apq, {"query": OTHER, "extensions": persisted(sha(QUERY)[:-1] + "0")})
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    bad = await post(apq, {"extensions": {"persistedQuery": {"version": 2, "sha256Hash": "x"}}})
    assert bad.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_trusted_documents_manifest_is_all_that_runs(
    engine: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    manifest = tmp_path / "trusted.json"
    manifest.write_bytes(orjson.dumps({sha(QUERY): QUERY}))
    trusted = Settings(**{**settings.__dict__, "trusted_documents": manifest})
    async for client in gateway(engine, trusted):
        by_hash = await post(client, {"extensions": persisted(sha(QUERY))})
        assert by_hash.json() == {"data": {"cities": {"totalCount": 0}}}
        by_text = await post(client, {"query": QUERY})
        assert by_text.json() == {"data": {"cities": {"totalCount": 0}}}
        for body in ({"query": OTHER}, {"extensions": persisted(sha(OTHER))},
                     {"query": OTHER, "extensions": persisted(sha(OTHER))}):
            refused = await post(client, body)
            assert refused.status_code == 400
            assert refused.json()["errors"][0]["extensions"]["code"] == (
                "PERSISTED_QUERY_NOT_ALLOWED")
        # nothing was registered by the last one
        again = await post(client, {"extensions": persisted(sha(OTHER))})
        assert again.status_code == 400


def test_a_manifest_whose_hash_is_not_its_document_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(orjson.dumps({sha(OTHER): QUERY}))
    with pytest.raises(ManifestError, match="is not its document"):
        load_manifest(path)


async def test_unknown_fields_do_not_name_types_without_introspection(
    apq: httpx.AsyncClient,
) -> None:
    body = (await post(apq, {"query": "{ cities(first: 1) { edges { node { secret } } } }"})).json()
    message = body["errors"][0]["message"]
    assert message == "Cannot query field 'secret'."


def test_the_cli_builds_a_manifest_the_gateway_loads(tmp_path: Path) -> None:
    folder = tmp_path / "operations"
    folder.mkdir()
    (folder / "cities.graphql").write_text(QUERY)
    (folder / "nested").mkdir()
    (folder / "nested" / "documents.graphql").write_text(OTHER)
    out = tmp_path / "trusted.json"
    result = subprocess.run(
        [sys.executable, "-m", "gateway.tools.cli", "trusted-documents", str(folder),
         "--output", str(out)], capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert load_manifest(out) == {sha(QUERY): QUERY, sha(OTHER): OTHER}
    (folder / "broken.graphql").write_text("{ nope }")
    broken = subprocess.run(
        [sys.executable, "-m", "gateway.tools.cli", "trusted-documents", str(folder),
         "--output", str(out)], capture_output=True, text=True, timeout=60, check=False,
    )
    assert broken.returncode == 1 and "broken.graphql" in broken.stderr
