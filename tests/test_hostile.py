"""Hostile input (issue 5): every case is answered with a 4xx or a 200 carrying errors, each
error coded (never ``INTERNAL``), never a 5xx, never a traceback, SQL text or file path. And
error masking: an unexpected exception reaches the client as ``INTERNAL`` with a request id,
its detail only in the server log; logs never hold the token; rejected documents are logged
truncated."""

from __future__ import annotations

import base64
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from gateway.store import shared
from resolvers.ids import encode_cursor, to_global_id
from tests.conftest import Server, bearer, create_database, drop_database

USER = "7d6c1f0a-2b3e-4c5d-8e9f-0a1b2c3d4e5f"
AS_USER = bearer(USER)
CODES = {"BAD_USER_INPUT", "UNAUTHENTICATED", "NOT_FOUND", "FORBIDDEN"}

# What no response may contain: SQL, table names, Python internals, paths.
LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|/work/|/usr/|site-packages|sqlalchemy|asyncpg|psycopg|"
    r"\bSELECT\b|\bFROM\s+\w|\bINSERT\b|\bUPDATE\s+\w|\bWHERE\b|chat_conversations|"
    r"chat_messages|v2_conversations|v2_messages|v2_projects|migration_tracking|"
    r"pg_catalog|RecursionError|KeyError|AttributeError|TypeError|ValueError",
)


@pytest.fixture(scope="module")
async def database(server: Server, template: str) -> AsyncIterator[str]:
    """One database for the module: nothing here writes rows."""
    name = await create_database(server, template)
    yield name
    await drop_database(server, name)


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def gql(query: str, variables: Any = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query, **extra}
    if variables is not None:
        body["variables"] = variables
    return {"json": body}


def raw(content: bytes | str, content_type: str = "application/json") -> dict[str, Any]:
    return {"content": content, "headers": {"content-type": content_type}}


@dataclass
class Case:
    name: str
    request: dict[str, Any]
    method: str = "POST"
    # the statuses this case may get; "errors" must be present in every answer
    statuses: tuple[int, ...] = (200, 400)
    headers: dict[str, str] = field(default_factory=lambda: dict(AS_USER))


def query_of_depth(depth: int) -> str:
    body = "conversations { edges { node { ... on V2Conversation { project { " + (
        "conversations { edges { node { project { " * (depth // 4)
    )
    return "{ " + body + "id" + " }" * body.count("{") + " }"


FIRST = "query($n: Int) { conversations(first: $n) { totalCount } }"
NODE = "query($id: ID!) { node(id: $id) { id } }"
FILTER = "query($f: ConversationFilter) { conversations(filter: $f) { totalCount } }"
AFTER = "query($c: String) { conversations(after: $c) { totalCount } }"
CITY = to_global_id("City", uuid.uuid4())
V2 = to_global_id("V2Conversation", uuid.uuid4())
ZONE = to_global_id("Zone", uuid.uuid4())
BIG = "x" * 100_000
MIGRATE = (
    "mutation($id: ID!) { migrateConversation(input: {conversationId: $id}) { alreadyMigrated } }"
)

CASES = [
    # --- the transport
    Case("truncated JSON", raw('{"query": "{ __typename }"')),
    Case("not JSON", raw("query { __typename }")),
    Case("empty body", raw(b"")),
    Case("invalid UTF-8", raw(b'{"query": "\xff\xfe"}')),
    Case("NaN", raw('{"query": "{ __typename }", "variables": {"n": NaN}}')),
    Case(
        "deeply nested JSON",
        raw('{"query": "{ __typename }", "variables": ' + "[" * 5000 + "]" * 5000 + "}"),
    ),
    Case("a JSON string", raw('"{ __typename }"')),
    Case("a JSON number", raw("42")),
    Case("JSON null", raw("null")),
    Case("an empty batch", raw("[]")),
    Case("a batch", raw('[{"query": "{ __typename }"}]')),
    Case("no query", raw("{}")),
    Case("a null query", gql(None)),  # type: ignore[arg-type]
    Case("a numeric query", raw('{"query": 42}')),
    Case("a blank query", gql("   ")),
    Case("variables as a list", gql("{ __typename }", [1, 2])),
    Case("variables as a string", gql("{ __typename }", "{}")),
    Case("a numeric operationName", gql("{ __typename }", operationName=42)),
    Case("an unknown operationName", gql("query A { __typename }", operationName="B")),
    Case("an anonymous and a named operation", gql("{ __typename } mutation M { __typename }")),
    Case("a subscription", gql("subscription { __typename }")),
    Case("GET with bad variables", {"params": {"query": FIRST, "variables": "{nope"}}, "GET"),
    Case("GET without a query", {"params": {}}, "GET"),
    Case("GET mutation", {"params": {"query": MIGRATE, "variables": '{"id": "x"}'}}, "GET", (405,)),
    Case("form POST", {"data": {"query": "{ __typename }"}}, statuses=(415,)),
    Case(
        "1 MB body",
        raw(b'{"query": "# ' + b"x" * 1_000_000 + b'\\n{ __typename }"}'),
        statuses=(413,),
    ),
    Case("100 KB variable", gql(NODE, {"id": BIG}), statuses=(413,)),
    # --- syntax and validation
    Case("a syntax error", gql("{ conversations { ")),
    Case("an unknown field", gql("{ secrets }")),
    Case("a lexer error", gql('{ cities(search: "unterminated) { totalCount } }')),
    Case("control characters", gql("{ __typename \u0000 }")),
    Case("deep nesting", gql(query_of_depth(50))),
    Case("very deep nesting", gql("{" + "a{" * 400 + "b" + "}" * 401)),
    Case("nested lists", gql("{ nodes(ids: " + "[" * 300 + '"x"' + "]" * 300 + ") { id } }")),
    Case("an alias bomb", gql("{ " + " ".join(f"a{i}: __typename" for i in range(1000)) + " }")),
    Case("a directive bomb", gql("{" + " __typename @include(if: true)" * 120 + " }")),
    Case(
        "circular fragments",
        gql("query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }"),
    ),
    Case("self-spread", gql("query { ...A } fragment A on Query { __typename ...A }")),
    Case(
        "a fragment bomb",
        gql(
            "query { ...F0 } "
            + "".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }} " for i in range(30))
            + "fragment F30 on Query { __typename }"
        ),
    ),
    Case("an unknown directive", gql("{ __typename @evil }")),
    # --- variables of the wrong type
    Case("Int as a string", gql(FIRST, {"n": "x"})),
    Case("Int as a float", gql(FIRST, {"n": 1.5})),
    Case("Int beyond 32 bits", gql(FIRST, {"n": 2**40})),
    Case("Int as a list", gql(FIRST, {"n": [1]})),
    Case("Int as an object", gql(FIRST, {"n": {"a": 1}})),
    Case("ID as an object", gql(NODE, {"id": {"a": 1}})),
    Case("ID null for ID!", gql(NODE, {"id": None})),
    Case("ID missing", gql(NODE, {})),
    Case("an undeclared variable", gql("{ node(id: $id) { id } }", {"id": "x"})),
    Case("filter as a string", gql(FILTER, {"f": "V1"})),
    Case("an unknown filter field", gql(FILTER, {"f": {"sourc": "V1"}})),
    Case("an unknown enum value", gql(FILTER, {"f": {"source": "V3"}})),
    Case("a bad DateTime", gql(FILTER, {"f": {"lastMessageAfter": "yesterday"}})),
    Case(
        "a DateTime without zone", gql(FILTER, {"f": {"lastMessageAfter": "2026-01-01T00:00:00"}})
    ),
    Case("a Boolean as a string", gql(FILTER, {"f": {"isActive": "true"}})),
    Case(
        "a list with a null",
        gql("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [None]}),
    ),
    Case("groupBy of a wrong enum", gql("{ chatEventStats(groupBy: [YEAR]) { events } }")),
    # --- global ids
    Case("an id that is not base64", gql(NODE, {"id": "!!!"})),
    Case("an id of an unknown type", gql(NODE, {"id": b64(f"Secret:{uuid.uuid4()}")})),
    Case("an id without a uuid", gql(NODE, {"id": b64("V1Conversation:42")})),
    Case("an id without a colon", gql(NODE, {"id": b64("V1Conversation")})),
    Case("an id of raw bytes", gql(NODE, {"id": b64(b"\xff\xfe\x00")})),
    Case("an empty id", gql(NODE, {"id": ""})),
    Case("a 60 KB id", gql(NODE, {"id": "A" * 60_000})),
    Case("an id with SQL", gql(NODE, {"id": b64("V1Conversation:' OR 1=1 --")})),
    Case("a City id as ownerId", gql(FILTER, {"f": {"ownerId": CITY}})),
    Case("a City id as projectId", gql(FILTER, {"f": {"projectId": CITY}})),
    Case("a V2 id to migrate", gql(MIGRATE, {"id": V2})),
    Case("a City id to migrate", gql(MIGRATE, {"id": CITY})),
    Case(
        "a Zone id as cityId",
        gql("query($z: ID) { documents(filter: {cityId: $z}) { totalCount } }", {"z": ZONE}),
    ),
    # --- first
    Case("first 0", gql(FIRST, {"n": 0})),
    Case("first -1", gql(FIRST, {"n": -1})),
    Case("first 101", gql(FIRST, {"n": 101})),
    Case("first 2**31-1", gql(FIRST, {"n": 2**31 - 1})),
    Case("first -2**31", gql(FIRST, {"n": -(2**31)})),
    Case("first literal 2**31", gql("{ conversations(first: 2147483648) { totalCount } }")),
    Case("first literal float", gql("{ conversations(first: 1e10) { totalCount } }")),
    # --- cursors
    Case("a garbage cursor", gql(AFTER, {"c": "garbage"})),
    Case(
        "a cursor of another kind", gql(AFTER, {"c": encode_cursor("city", "Lyon", uuid.uuid4())})
    ),
    Case(
        "a cursor with a bad date",
        gql(AFTER, {"c": b64(orjson.dumps(["conversation", "not-a-date", str(uuid.uuid4())]))}),
    ),
    Case(
        "a cursor with a bad uuid",
        gql(AFTER, {"c": b64(orjson.dumps(["conversation", "2026-01-01T00:00:00+00:00", "x"]))}),
    ),
    Case("a cursor of an object", gql(AFTER, {"c": b64(orjson.dumps({"kind": "conversation"}))})),
    Case("a cursor of numbers", gql(AFTER, {"c": b64(orjson.dumps(["conversation", 1, 2]))})),
    Case("a 60 KB cursor", gql(AFTER, {"c": "A" * 60_000})),
    Case(
        "a cursor with SQL",
        gql(AFTER, {"c": b64(orjson.dumps(["conversation", "'; DROP TABLE x; --", "y"]))}),
    ),
    # --- tokens
    Case(
        "a bad token",
        gql("{ __typename }"),
        headers={"Authorization": "Bearer x.y.z"},
        statuses=(401,),
    ),
    Case(
        "a Basic header",
        gql("{ __typename }"),
        headers={"Authorization": "Basic YTpi"},
        statuses=(401,),
    ),
    # --- anonymous viewers asking for what needs a sign-in
    Case(
        "anonymous migrate",
        gql(MIGRATE, {"id": to_global_id("V1Conversation", uuid.uuid4())}),
        headers={},
    ),
    Case(
        "migrate a missing conversation",
        gql(MIGRATE, {"id": to_global_id("V1Conversation", uuid.uuid4())}),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_hostile_input_gets_a_coded_error(case: Case, client: httpx.AsyncClient) -> None:
    kwargs = dict(case.request)
    headers = {**case.headers, **kwargs.pop("headers", {})}
    response = await client.request(case.method, "/graphql", headers=headers, **kwargs)
    assert response.status_code < 500, response.text[:2000]
    assert response.status_code in case.statuses, (response.status_code, response.text[:2000])
    body = response.json()
    assert body.get("errors"), body
    for error in body["errors"]:
        assert error["extensions"]["code"] in CODES, error
        assert isinstance(error["message"], str) and error["message"]
        assert len(error["message"]) < 2000
    assert not LEAKS.search(response.text), LEAKS.search(response.text)


async def test_a_huge_string_in_a_small_enough_body_is_harmless(client: httpx.AsyncClient) -> None:
    # 60 KB of search text fits the body limit: the query runs (and finds nothing)
    response = await client.post(
        "/graphql",
        json={
            "query": "query($s: String) { cities(search: $s) { totalCount } }",
            "variables": {"s": "%_" * 30_000},
        },
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"cities": {"totalCount": 0}}}


# --- error masking ------------------------------------------------------------------------------

SECRET = "SELECT secret FROM chat_messages /path/file.py"


@pytest.fixture
def exploding(monkeypatch: pytest.MonkeyPatch) -> None:
    async def viewer_profile(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(SECRET)

    monkeypatch.setattr(shared, "viewer_profile", viewer_profile)


async def test_an_unexpected_exception_is_masked_and_logged(
    exploding: None, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await client.post(
        "/graphql",
        json={"query": "{ viewer { id } cities { totalCount } }"},
        headers={**AS_USER, "X-Request-Id": "req-42"},
    )
    assert response.status_code == 200
    body = response.json()
    [error] = body["errors"]
    assert error["message"] == "Internal server error."
    assert error["extensions"] == {"code": "INTERNAL", "requestId": "req-42"}
    assert error["path"] == ["viewer"]
    # the sibling field still answers
    assert body["data"] == {"viewer": None, "cities": {"totalCount": 0}}
    assert response.headers["x-request-id"] == "req-42"
    for leak in ("SELECT", "secret", "chat_messages", "/path/file.py", "Traceback", "RuntimeError"):
        assert leak not in response.text
    # the detail is in the server log, with the request id
    records = [r for r in caplog.records if "req-42" in r.getMessage()]
    assert any(r.exc_info and SECRET in str(r.exc_info[1]) for r in records), caplog.text
    assert SECRET in caplog.text


async def test_a_generated_request_id_is_returned(
    exploding: None, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await client.post(
        "/graphql",
        json={"query": "{ viewer { id } }"},
        headers={**AS_USER, "X-Request-Id": "not a valid id\twith tabs"},
    )
    request_id = response.json()["errors"][0]["extensions"]["requestId"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert response.headers["x-request-id"] == request_id
    assert request_id in caplog.text
    assert "with tabs" not in caplog.text


async def test_an_error_outside_execution_is_a_masked_500(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from gateway.context import Context

    finish = Context.finish

    async def broken_finish(self: Context, *, commit: bool) -> None:
        await finish(self, commit=commit)  # the connection goes back to the pool; then the failure
        raise RuntimeError(SECRET)

    monkeypatch.setattr(Context, "finish", broken_finish)
    response = await client.post("/graphql", json={"query": "{ viewer { id } }"}, headers=AS_USER)
    assert response.status_code == 500
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "INTERNAL"
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert SECRET not in response.text
    assert SECRET in caplog.text


# --- logging ------------------------------------------------------------------------------------


async def test_logs_never_hold_the_authorization_header(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, exploding: None
) -> None:
    caplog.set_level(logging.DEBUG)
    good = AS_USER["Authorization"]
    bad = "Bearer " + good.split(" ")[1][:-4] + "AAAA"
    for header in (good, bad, "Basic c2VjcmV0OnBhc3N3b3Jk"):
        for query in (
            "{ viewer { id } }",
            "{ nope }",
            "{ conversations(first: 500) { totalCount } }",
        ):
            await client.post("/graphql", json={"query": query}, headers={"Authorization": header})
    text = caplog.text
    assert caplog.records, "expected something to be logged"
    for header in (good, bad, "c2VjcmV0OnBhc3N3b3Jk"):
        token = header.split(" ")[-1]
        assert token not in text
        # nor a recognisable piece of it
        assert token[:24] not in text and token[-24:] not in text


async def test_a_rejected_document_is_logged_truncated(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    marker = "MARKER" + uuid.uuid4().hex
    document = "# " + marker + " " + "y" * 50_000 + "\n" + query_of_depth(40)
    response = await client.post("/graphql", json={"query": document}, headers=AS_USER)
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    logged = [r.getMessage() for r in caplog.records if marker in r.getMessage()]
    assert len(logged) == 1, [r.getMessage()[:200] for r in caplog.records]
    [line] = logged
    assert "rejected document" in line
    assert "exceeds maximum operation depth" in line
    assert response.headers["x-request-id"] in line
    document_part = line.split("| document: ", 1)[1]
    assert len(document_part.encode()) <= 2048
    assert "bytes]" in document_part  # says it was cut
    assert len(line.encode()) < 4096
    assert "\n" not in line
    # and nothing else logged the whole document
    assert all(len(r.getMessage()) < 4096 for r in caplog.records)


async def test_a_short_rejected_document_is_logged_whole(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await client.post("/graphql", json={"query": "{ secrets_marker_field }"}, headers=AS_USER)
    [line] = [
        r.getMessage()
        for r in caplog.records
        if "secrets_marker_field" in r.getMessage() and "rejected document" in r.getMessage()
    ]
    assert line.endswith("| document: { secrets_marker_field }")


async def test_expected_errors_are_logged_in_one_line_without_traceback(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await client.post(
        "/graphql", json={"query": "{ conversations(first: 500) { totalCount } }"}, headers=AS_USER
    )
    records = [r for r in caplog.records if "first must be between" in r.getMessage()]
    assert records
    assert all(r.exc_info is None and r.levelno <= logging.INFO for r in records)


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ('{ cities(search: "Pa\\u0000ris") { totalCount } }', None),
        ("query ($s: String) { cities(search: $s) { totalCount } }", {"s": "Pa\x00ris"}),
        (
            "mutation ($c: ID!, $t: String!) { postMessage(input: {conversationId: $c, "
            "text: $t}) { message { id } } }",
            {"c": to_global_id("V2Conversation", uuid.uuid4()), "t": "a\x00b"},
        ),
        (
            "{ conversations(first: 1) { edges { node { messages(first: 1, "
            'after: "x\\u0000") { totalCount } } } } }',
            None,
        ),
        # a node id that would decode with the NUL left out (base64 skips what is not its own),
        # once the query's plan is remembered
        (
            "query ($id: ID!) { node(id: $id) { id } }",
            {"id": to_global_id("V2Conversation", uuid.uuid4())[:8] + "\x00"
             + to_global_id("V2Conversation", uuid.uuid4())[8:]},
        ),
    ],
)
async def test_a_nul_character_in_a_string_argument_is_refused_before_sql(
    client: httpx.AsyncClient, statements: Any, query: str, variables: Any
) -> None:
    if variables and "id" in variables:  # the plan of a node query is remembered: asked first
        await client.post("/graphql", headers=AS_USER, **gql(
            query, {"id": to_global_id("V2Conversation", uuid.uuid4())}))
    statements.reset()
    response = await client.post("/graphql", headers=AS_USER, **gql(query, variables))
    body = response.json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"], body
    assert "NUL" in body["errors"][0]["message"]
    assert statements.total == 0
