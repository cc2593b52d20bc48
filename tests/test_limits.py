"""Document and request limits (issue 5, DESIGN §7): each refused before execution — zero SQL
statements — with a clear message and ``BAD_USER_INPUT``; introspection, suggestions and
GraphiQL off in production; CSRF-safe transports; per-role statement timeouts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import StatementCounter, create_engine, pooled
from gateway.http.app import create_app
from gateway.settings import Limits, Settings
from gateway.store import shared
from tests.conftest import JWT_SECRET, Server, bearer, create_database, drop_database
from tests.test_statement_count import REFERENCE

USER = "5f0c3c8e-8a0e-4f55-9a54-0b8a4c2f6d10"
AS_USER = bearer(USER)


@pytest.fixture(scope="module")
async def database(server: Server, template: str) -> AsyncIterator[str]:
    """One database for the module: nothing here writes rows."""
    name = await create_database(server, template)
    yield name
    await drop_database(server, name)


async def post(client: httpx.AsyncClient, query: str, **extra: Any) -> httpx.Response:
    headers = extra.pop("headers", AS_USER)
    return await client.post("/graphql", json={"query": query, **extra}, headers=headers)


def refused(response: httpx.Response, fragment: str, status: int | None = None) -> str:
    """The single error's message, after checking it is a coded, non-internal refusal."""
    if status is not None:
        assert response.status_code == status, response.text
    else:
        assert response.status_code in (200, 400), response.text
    body = response.json()
    assert body["data"] is None, body
    messages = [e["message"] for e in body["errors"]]
    assert all(e["extensions"]["code"] == "BAD_USER_INPUT" for e in body["errors"]), body
    assert any(fragment in m for m in messages), messages
    return " ".join(messages)


def accepted(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


# --- depth --------------------------------------------------------------------------------------

LEAF = {"conversations": "totalCount", "edges": "cursor", "node": "id", "project": "id"}


def query_of_depth(depth: int) -> str:
    """A valid query whose deepest field is at ``depth`` (the root field is at depth 0, as
    strawberry's QueryDepthLimiter counts): conversations → edges → node → project →
    conversations → …"""
    cycle = ["edges", "node", "project", "conversations"]
    fields = ["conversations"] + [cycle[i % 4] for i in range(depth - 1)]
    body = ""
    for i, name in enumerate(fields):
        body += (
            "... on V2Conversation { project { " if name == "project" and i == 3 else f"{name} {{ "
        )
    body += LEAF[fields[-1]]
    return "{ " + body + " }" * body.count("{") + " }"


async def test_depth_12_is_accepted(client: httpx.AsyncClient) -> None:
    accepted(await post(client, query_of_depth(12)))


async def test_a_realistic_depth_12_query_is_accepted(client: httpx.AsyncClient) -> None:
    # a project's conversation's message's document's city: Relay connections nest deeply
    query = """{ conversations { edges { node { ... on V2Conversation { project {
      conversations { edges { node { messages { edges { node { documents { city { name }
    } } } } } } } } } } } } }"""
    accepted(await post(client, query))


async def test_the_reference_query_is_accepted(client: httpx.AsyncClient) -> None:
    accepted(await post(client, REFERENCE, variables={"first": 100}))


@pytest.mark.parametrize("depth", [13, 14, 50])
async def test_deeper_than_12_is_refused_without_sql(
    depth: int, client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    message = refused(await post(client, query_of_depth(depth)), "exceeds maximum operation depth")
    assert "12" in message
    assert statements.total == 0


async def test_depth_counts_through_fragments(
    client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    query = """
    query { conversations { ...C } }
    fragment C on ConversationConnection { edges { node { ... on V2Conversation { ...P } } } }
    fragment P on V2Conversation { project { conversations { ...V } } }
    fragment V on V2ConversationConnection { edges { node { project { conversations { ...W } } } } }
    fragment W on V2ConversationConnection { edges { node { project { conversations { edges {
      cursor } } } } } }
    """
    refused(await post(client, query), "exceeds maximum operation depth")
    assert statements.total == 0


# --- aliases ------------------------------------------------------------------------------------


def aliases(count: int) -> str:
    return " ".join(f"a{i}: __typename" for i in range(count))


async def test_15_aliases_are_accepted(client: httpx.AsyncClient) -> None:
    data = accepted(await post(client, "{ " + aliases(15) + " }"))
    assert len(data) == 15


async def test_16_aliases_are_refused_without_sql(
    client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    refused(await post(client, "{ " + aliases(16) + " }"), "16 aliases found. Allowed: 15")
    assert statements.total == 0


async def test_aliases_are_counted_through_fragment_spreads(
    client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    # Regression (GHSA-fr49-mhgj-crfc, fixed in strawberry 0.315.7): a fragment's aliases
    # count once per spread. Eight aliases spread twice are 16.
    query = "query { ...F ...F } fragment F on Query { " + aliases(8) + " }"
    refused(await post(client, query), "16 aliases found. Allowed: 15")
    nested = (
        "query { ...A } fragment A on Query { ...B ...B } "
        "fragment B on Query { ...C ...C } fragment C on Query { " + aliases(4) + " }"
    )
    refused(await post(client, nested), "16 aliases found. Allowed: 15")
    inline = "{ ... on Query { " + aliases(8) + " } ... on Query { " + aliases(8) + " } }"
    refused(await post(client, inline), "16 aliases found. Allowed: 15")
    assert statements.total == 0


async def test_an_alias_bomb_is_refused_without_sql(
    client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    # 1,000 aliases pass the body limit; the token limit or the alias limit refuses them
    response = await post(client, "{ " + aliases(1000) + " }")
    assert response.status_code in (200, 400)
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert statements.total == 0


def fragment_bomb(levels: int) -> str:
    """Each fragment spreads the next one twice: ``2**levels`` fields in ~10 tokens a level."""
    query = "query { ...F0 } "
    for i in range(levels):
        query += f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }} "
    return query + f"fragment F{levels} on Query {{ __typename }}"


async def test_a_fragment_bomb_is_refused_at_once_without_sql(
    client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    # 40 levels would be 2**40 fields: strawberry's limiters alone would walk each path
    started = time.monotonic()
    response = await post(client, fragment_bomb(40))
    assert time.monotonic() - started < 2
    refused(response, "expands to more than 2000 fields through its fragment spreads")
    refused(await post(client, fragment_bomb(11)), "more than 2000 fields")
    assert statements.total == 0


async def test_fragments_reused_within_the_expansion_limit_are_accepted(
    client: httpx.AsyncClient,
) -> None:
    assert accepted(await post(client, fragment_bomb(10))) == {"__typename": "Query"}


# --- tokens and directives ----------------------------------------------------------------------


def with_tokens(count: int) -> str:
    """``{ chatEventStats(groupBy: [SOURCE, …]) { events } }`` of exactly ``count`` tokens
    (12 of structure, one per list item); anonymous viewers get [] without SQL."""
    return "{ chatEventStats(groupBy: [" + " SOURCE" * (count - 12) + " ]) { events } }"


async def test_1000_tokens_are_accepted(client: httpx.AsyncClient) -> None:
    response = await post(client, with_tokens(1000), headers={})
    assert accepted(response) == {"chatEventStats": []}


async def test_1001_tokens_are_refused_without_sql(
    client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    refused(await post(client, with_tokens(1001)), "more than 1000 tokens")
    assert statements.total == 0


async def test_comments_are_not_tokens_but_the_body_limit_bounds_them(
    client: httpx.AsyncClient,
) -> None:
    padded = "# " + "x" * 50_000 + "\n{ __typename }"
    assert accepted(await post(client, padded)) == {"__typename": "Query"}
    too_big = "# " + "x" * 70_000 + "\n{ __typename }"
    response = await post(client, too_big)
    assert response.status_code == 413


def directives_without_aliases(count: int) -> str:
    return "{" + " __typename @skip(if: false)" * count + " }"


async def test_50_directives_are_accepted(client: httpx.AsyncClient) -> None:
    assert accepted(await post(client, directives_without_aliases(50))) == {"__typename": "Query"}


async def test_51_directives_are_refused_without_sql(
    client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    message = refused(
        await post(client, directives_without_aliases(51)), "maximum directive count of 50"
    )
    assert "Did you mean" not in message
    assert statements.total == 0


# --- first --------------------------------------------------------------------------------------


@pytest.mark.parametrize("first", [101, 1000, 2**31 - 1, 0, -1])
@pytest.mark.parametrize(
    "field", ["conversations", "projects", "chatEvents", "cities", "documents"]
)
async def test_first_out_of_range_is_refused_without_sql(
    field: str, first: int, client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    response = await post(client, f"{{ {field}(first: {first}) {{ totalCount }} }}")
    body = response.json()
    assert response.status_code == 200
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == f"first must be between 1 and 100, got {first}"
    assert statements.total == 0


async def test_first_100_is_accepted(client: httpx.AsyncClient) -> None:
    accepted(await post(client, "{ conversations(first: 100) { totalCount } }"))


# --- body size ----------------------------------------------------------------------------------


def body_of(size: int) -> bytes:
    """A JSON body of exactly ``size`` bytes carrying a valid query (padded with a comment)."""
    head, tail = b'{"query": "# ', b'\\n{ __typename }"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "65536 bytes" in error["message"]


async def test_a_body_of_64_kib_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", content=body_of(64 * 1024), headers={"content-type": "application/json"}
    )
    assert accepted(response) == {"__typename": "Query"}


@pytest.mark.parametrize("size", [64 * 1024 + 1, 1024 * 1024])
async def test_a_larger_body_is_413_without_sql(
    size: int, client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    response = await client.post(
        "/graphql", content=body_of(size), headers={"content-type": "application/json", **AS_USER}
    )
    assert_too_large(response)
    assert statements.total == 0


@pytest.mark.parametrize("size", [64 * 1024 + 1, 1024 * 1024])
async def test_a_chunked_body_is_413_when_it_passes_the_limit(
    size: int, client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    data = body_of(size)
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 8192):
            sent.append(start)
            yield data[start : start + 8192]

    response = await client.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json", **AS_USER}
    )
    assert_too_large(response)
    assert statements.total == 0


async def test_a_chunked_body_under_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    data = body_of(60_000)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 4096):
            yield data[start : start + 4096]

    response = await client.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert accepted(response) == {"__typename": "Query"}


async def test_a_lying_content_length_is_refused_up_front(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        content=b'{"query": "{ __typename }"}',
        headers={"content-type": "application/json", "content-length": str(10**9)},
    )
    assert_too_large(response)


async def test_a_huge_get_query_string_is_413(
    engine: AsyncEngine, statements: StatementCounter
) -> None:
    # (httpx will not send a query string over 64 KiB: the limit is lowered to show the check)
    settings = Settings(jwt_secret=JWT_SECRET, env="test", limits=Limits(max_body_bytes=1000))
    async with app_client(settings, engine) as client:
        response = await client.get(
            "/graphql", params={"query": "# " + "x" * 2000 + "\n{ __typename }"}
        )
        assert response.status_code == 413
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        small = await client.get("/graphql", params={"query": "{ __typename }"})
        assert accepted(small) == {"__typename": "Query"}
    assert statements.total == 0


async def test_the_body_limit_is_configurable(engine: AsyncEngine) -> None:
    settings = Settings(jwt_secret=JWT_SECRET, env="test", limits=Limits(max_body_bytes=1000))
    async with app_client(settings, engine) as client:
        response = await client.post(
            "/graphql", content=body_of(1001), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert "1000 bytes" in response.json()["errors"][0]["message"]


# --- batching -----------------------------------------------------------------------------------


async def test_batched_operations_are_refused_without_sql(
    client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    response = await client.post(
        "/graphql",
        json=[{"query": "{ viewer { id } }"}, {"query": "{ viewer { id } }"}],
        headers=AS_USER,
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error == {
        "message": "batched operations are not supported",
        "extensions": {"code": "BAD_USER_INPUT"},
    }
    assert statements.total == 0


# --- production: introspection, suggestions, GraphiQL ---------------------------------------------


class app_client:
    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.app = create_app(settings, engine=engine)

    async def __aenter__(self) -> httpx.AsyncClient:
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://gateway.test"
        )
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()


PRODUCTION = Settings(jwt_secret=JWT_SECRET, env="production", introspection=False, graphiql=False)


@pytest.fixture
async def production(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(PRODUCTION, engine) as client:
        yield client


INTROSPECTION = [
    "{ __schema { queryType { name } } }",
    '{ __type(name: "Query") { name } }',
    "query { ...F } fragment F on Query { __schema { types { name } } }",
    "{ conversations { edges { node { ... on V1Conversation { __type: __typename } } } } }",
]


def test_production_defaults_turn_introspection_and_graphiql_off() -> None:
    env = {"GATEWAY_ENV": "production", "DATABASE_URL": "postgresql://a@h/d", "JWT_SECRET": "s"}
    settings = Settings.from_env(env)
    assert settings.introspection is False
    assert settings.graphiql is False
    explicit = Settings.from_env({**env, "GATEWAY_INTROSPECTION": "true", "GATEWAY_GRAPHIQL": "1"})
    assert explicit.introspection is True
    assert explicit.graphiql is True
    development = Settings.from_env({})
    assert development.introspection is True
    assert development.graphiql is True


async def test_introspection_is_off_in_production(
    production: httpx.AsyncClient, statements: StatementCounter
) -> None:
    for query in INTROSPECTION[:3]:
        message = refused(await post(production, query), "introspection has been disabled")
        assert "__schema" in message or "__type" in message
    # __typename is not introspection
    assert accepted(await post(production, "{ __typename }")) == {"__typename": "Query"}
    assert statements.total == 0


async def test_introspection_is_on_in_development(client: httpx.AsyncClient) -> None:
    data = accepted(await post(client, INTROSPECTION[0]))
    assert data == {"__schema": {"queryType": {"name": "Query"}}}
    data = accepted(await post(client, INTROSPECTION[1]))
    assert data == {"__type": {"name": "Query"}}


SUGGESTING = [
    ("{ conversation { totalCount } }", None, "Cannot query field 'conversation'"),
    ("{ conversations(firts: 1) { totalCount } }", None, "Unknown argument 'firts'"),
    ("{ conversations(filter: {source: V3}) { totalCount } }", None, "Value 'V3' does not exist"),
    ("{ conversations(filter: {sourc: V1}) { totalCount } }", None, "unknown field 'sourc'"),
    ("{ node(id: 1) { ... on V3Conversation { id } } }", None, "Unknown type 'V3Conversation'"),
    (
        "query($f: ConversationFilter) { conversations(filter: $f) { totalCount } }",
        {"f": {"sourc": "V1"}},
        "unknown field 'sourc'",
    ),
    (
        "query($f: ConversationFilter) { conversations(filter: $f) { totalCount } }",
        {"f": {"source": "V3"}},
        "Value 'V3' does not exist",
    ),
]


@pytest.mark.parametrize(("query", "variables", "fragment"), SUGGESTING)
async def test_no_field_suggestions_in_production(
    query: str,
    variables: dict[str, Any] | None,
    fragment: str,
    production: httpx.AsyncClient,
    client: httpx.AsyncClient,
    statements: StatementCounter,
) -> None:
    extra = {"variables": variables} if variables else {}
    message = refused(await post(production, query, **extra), fragment)
    assert "Did you mean" not in message
    # the same document in development suggests (that is what production hides)
    message = refused(await post(client, query, **extra), fragment)
    assert "Did you mean" in message
    assert statements.total == 0


async def test_graphiql_is_off_in_production(production: httpx.AsyncClient) -> None:
    response = await production.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 400
    assert "text/html" not in response.headers["content-type"]
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_graphiql_is_on_in_development(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


# --- CSRF ---------------------------------------------------------------------------------------

MUTATION = 'mutation { revertMigration(input: {conversationId: "x"}) { migration { id } } }'


async def test_a_mutation_over_get_is_refused_without_sql(
    client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    response = await client.get("/graphql", params={"query": MUTATION}, headers=AS_USER)
    assert response.status_code == 405
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "only accepted over POST" in error["message"]
    assert statements.total == 0


async def test_a_query_over_get_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": "{ __typename }"})
    assert accepted(response) == {"__typename": "Query"}


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"data": {"query": MUTATION}},  # application/x-www-form-urlencoded
        {"files": {"query": (None, MUTATION)}},  # multipart/form-data
        {"content": MUTATION, "headers": {"content-type": "text/plain"}},
        {
            "content": '{"query": "' + MUTATION.replace('"', '\\"') + '"}',
            "headers": {"content-type": "text/plain;charset=UTF-8"},
        },
        {"content": '{"query": "{ __typename }"}', "headers": {"content-type": ""}},
        {
            "content": '{"query": "{ __typename }"}',
            "headers": {"content-type": "application/graphql"},
        },
    ],
    ids=["urlencoded", "multipart", "text-plain", "json-as-text-plain", "no-type", "graphql"],
)
async def test_non_json_posts_are_refused_without_sql(
    request_kwargs: dict[str, Any], client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    headers = {**AS_USER, **request_kwargs.pop("headers", {})}
    response = await client.post("/graphql", headers=headers, **request_kwargs)
    assert response.status_code == 415, response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert statements.total == 0


async def test_json_with_a_charset_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        content=b'{"query": "{ __typename }"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert accepted(response) == {"__typename": "Query"}


# --- regression tests for strawberry's fragment fixes -------------------------------------------


async def test_circular_fragments_are_a_validation_error_not_a_crash(
    client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    # Regression (GHSA-qfwv-87qj-98xq, fixed in strawberry 0.315.7): the depth limiter used
    # to recurse through A → B → A until RecursionError.
    cases = [
        "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
        "query { ...A } fragment A on Query { __typename ...A }",
        "query { conversations { ...C } } "
        "fragment C on ConversationConnection { edges { node { ... on V2Conversation { "
        "project { conversations { ...D } } } } } } "
        "fragment D on V2ConversationConnection { edges { node { project { conversations { "
        "...D } } } } }",
    ]
    for query in cases:
        response = await post(client, query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["data"] is None
        codes = {e["extensions"]["code"] for e in body["errors"]}
        assert codes == {"BAD_USER_INPUT"}, body
        assert any("Cannot spread fragment" in e["message"] for e in body["errors"]), body
        assert "Recursion" not in response.text
    assert statements.total == 0


def test_the_pinned_strawberry_has_both_fixes() -> None:
    from importlib.metadata import version
    from pathlib import Path

    installed = tuple(int(p) for p in version("strawberry-graphql").split(".")[:3])
    assert installed >= (0, 315, 7)
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert '"strawberry-graphql>=0.315.7"' in pyproject


# --- statement timeouts -------------------------------------------------------------------------


COUNTED = "{ cities { totalCount } }"


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """``Query.cities``' count replaced by a probe of the request's transaction settings
    (``{ cities { totalCount } }`` reads it for every viewer, anonymous ones too)."""
    seen: list[dict[str, Any]] = []

    async def cities_count(db: Any, **_kwargs: Any) -> int:
        row = (
            await db.rows(
                text(
                    "SELECT current_setting('statement_timeout') AS timeout, current_user AS role,"
                    " current_setting('request.jwt.claims', true) AS claims"
                )
            )
        )[0]
        seen.append(dict(row))
        return 0

    monkeypatch.setattr(shared, "cities_count", cities_count)
    yield seen


async def test_each_role_runs_under_its_statement_timeout(
    client: httpx.AsyncClient, probe: list[dict[str, Any]]
) -> None:
    for headers in ({}, AS_USER, bearer(USER, "service_role")):
        accepted(await post(client, COUNTED, headers=headers))
    assert [(p["role"], p["timeout"]) for p in probe] == [
        ("anon", "3s"),
        ("authenticated", "8s"),
        ("service_role", "30s"),
    ]


async def test_statement_timeouts_are_configurable(
    engine: AsyncEngine, probe: list[dict[str, Any]]
) -> None:
    settings = Settings(
        jwt_secret=JWT_SECRET,
        env="test",
        statement_timeout_anon_ms=1234,
        statement_timeout_authenticated_ms=2345,
        statement_timeout_service_ms=3456,
    )
    async with app_client(settings, engine) as client:
        for headers in ({}, AS_USER, bearer(USER, "service_role")):
            accepted(await post(client, COUNTED, headers=headers))
    assert [p["timeout"] for p in probe] == ["1234ms", "2345ms", "3456ms"]
    env = Settings.from_env({"GATEWAY_STATEMENT_TIMEOUT_ANON_MS": "1500"})
    assert env.statement_timeout_anon_ms == 1500


async def test_the_timeout_does_not_outlive_the_request(
    engine: AsyncEngine, client: httpx.AsyncClient, probe: list[dict[str, Any]]
) -> None:
    accepted(await post(client, COUNTED))
    async with pooled(engine) as conn:  # the connection the request gave back
        timeout = (await conn.execute(text("SHOW statement_timeout"))).scalar()
        role = (await conn.execute(text("SELECT current_user"))).scalar()
    assert timeout == "0"
    assert role == "authenticator"


async def test_a_slow_statement_is_cancelled_by_the_role_timeout(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def cities_count(db: Any, **_kwargs: Any) -> int:
        await db.execute(text("SELECT pg_sleep(5)"))
        return 0

    monkeypatch.setattr(shared, "cities_count", cities_count)
    settings = Settings(jwt_secret=JWT_SECRET, env="test", statement_timeout_anon_ms=200)
    async with app_client(settings, engine) as client:
        started = time.monotonic()
        response = await post(client, COUNTED, headers={})
        elapsed = time.monotonic() - started
    assert elapsed < 3
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "INTERNAL"
    assert "statement timeout" not in response.text
    assert "canceling statement due to statement timeout" in caplog.text


async def test_the_client_side_command_timeout_bounds_a_frozen_server(
    server: Server, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def cities_count(db: Any, **_kwargs: Any) -> int:
        await db.execute(text("SELECT pg_sleep(5)"))
        return 0

    monkeypatch.setattr(shared, "cities_count", cities_count)
    # the server would wait 60 s; the client gives up after 0.5 s
    settings = Settings(
        jwt_secret=JWT_SECRET, env="test", statement_timeout_anon_ms=60_000, command_timeout_s=0.5
    )
    engine = create_engine(server.database_url(database, "authenticator"), settings, pool_size=1)
    try:
        async with app_client(settings, engine) as client:
            started = time.monotonic()
            response = await post(client, COUNTED, headers={})
            assert time.monotonic() - started < 3
            # a server that does not answer is unavailable, not a bug (DESIGN §11)
            assert response.status_code == 503
            assert response.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            # the pool's one connection is usable afterwards
            monkeypatch.undo()
            assert accepted(await post(client, "{ __typename }")) == {"__typename": "Query"}
            assert accepted(await post(client, "{ viewer { id } }")) == {"viewer": None}
        async with pooled(engine) as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()


def test_limits_have_the_documented_defaults() -> None:
    limits = Settings.from_env({}).limits
    assert limits == Limits(
        max_depth=12,
        max_aliases=15,
        max_tokens=1000,
        max_directives=50,
        max_body_bytes=64 * 1024,
        max_first=100,
        max_expanded_fields=2000,
    )
    custom = Settings.from_env(
        {"GATEWAY_MAX_DEPTH": "5", "GATEWAY_MAX_ALIASES": "3", "GATEWAY_MAX_EXPANDED_FIELDS": "9"}
    ).limits
    assert (custom.max_depth, custom.max_aliases, custom.max_expanded_fields) == (5, 3, 9)


async def test_limits_are_configurable(engine: AsyncEngine) -> None:
    settings = replace(
        Settings(jwt_secret=JWT_SECRET, env="test"),
        limits=Limits(
            max_depth=3, max_aliases=2, max_tokens=50, max_directives=1, max_expanded_fields=8
        ),
    )
    async with app_client(settings, engine) as client:
        refused(await post(client, query_of_depth(4)), "maximum operation depth of 3")
        refused(await post(client, "{ " + aliases(3) + " }"), "Allowed: 2")
        refused(await post(client, with_tokens(51)), "more than 50 tokens")
        refused(await post(client, directives_without_aliases(2)), "directive count of 1")
        spread = "query { ...F ...F ...F } fragment F on Query { __typename __typename __typename }"
        refused(await post(client, spread), "more than 8 fields")
        accepted(await post(client, query_of_depth(3)))


async def test_a_repeated_document_is_validated_once(client: httpx.AsyncClient) -> None:
    # The limit rules are built once per schema, so strawberry's validation cache can hit; a
    # document accepted once is prepared (schema.prepared) and not validated again at all.
    from strawberry.extensions.validation_cache import _get_validate_cache

    cache = _get_validate_cache(256)
    query = {"query": "{ cities(first: 1) { totalCount } __typename }"}
    before = cache.cache_info()
    await client.post("/graphql", json=query)
    after_first = cache.cache_info()
    assert after_first.misses + after_first.hits == before.misses + before.hits + 1
    response = await client.post("/graphql", json=query)
    assert response.status_code == 200
    assert cache.cache_info() == after_first
