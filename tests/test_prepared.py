"""Prepared operations (``schema.prepared``): a document strawberry accepted once runs again
without strawberry's pipeline, and nothing a client sees or an operator logs differs: the
response, the refusals (wrong variables, a mutation over GET, a missing operation name), the
masking and logging of internal errors, the statements sent."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import StatementCounter
from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.store import shared
from schema import prepared as prepared_module
from schema.prepared import Prepared, prepared_of
from schema.root import build_schema
from tests.conftest import bearer

USER = "5d1c7c1e-2f7a-4a51-9d0e-6f2b8f0b7c11"
AS_USER = bearer(USER)
QUERY = "query Cities($n: Int) { cities(first: $n) { totalCount edges { node { name } } } }"


class Spy:
    """Counts the requests that went through strawberry's own ``execute``."""

    def __init__(self, schema: strawberry.Schema) -> None:
        self.calls = 0
        inner = schema.execute

        async def execute(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await inner(*args, **kwargs)

        schema.execute = execute  # type: ignore[method-assign]


@pytest.fixture
async def gateway(
    engine: AsyncEngine, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, strawberry.Schema, Spy]]:
    schema = build_schema(settings)
    spy = Spy(schema)
    app = create_app(settings, engine=engine, schema=schema)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c, schema, spy


async def twice(client: httpx.AsyncClient, **request: Any) -> tuple[httpx.Response, ...]:
    first = await client.request(**request)
    second = await client.request(**request)
    return first, second


async def test_an_accepted_document_runs_again_without_the_pipeline(
    gateway: tuple[httpx.AsyncClient, strawberry.Schema, Spy], engine: AsyncEngine
) -> None:
    client, schema, spy = gateway
    body = {"query": QUERY, "variables": {"n": 2}, "operationName": "Cities"}
    counter = StatementCounter().attach(engine)
    try:
        first = await client.post("/graphql", json=body, headers=AS_USER)
        sent_first = counter.total
        counter.reset()
        second = await client.post("/graphql", json=body, headers=AS_USER)
        sent_second = counter.total
    finally:
        counter.detach(engine)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert "errors" not in first.json()
    assert spy.calls == 1  # the second request took the prepared operation
    assert len(prepared_of(schema)) == 1
    assert sent_first == sent_second > 0
    # other variables, same document: still prepared
    third = await client.post(
        "/graphql", json={**body, "variables": {"n": 1}}, headers=AS_USER
    )
    assert third.status_code == 200 and spy.calls == 1


@pytest.mark.parametrize(
    ("query", "variables", "executor"),
    [
        # the engine answers every root field: run without graphql-core's executor
        ("query Q($skip: Boolean!) { __typename cities(first: 1) @skip(if: $skip) { totalCount }"
         " ...more } fragment more on Query { viewer { id } }", {"skip": False}, False),
        ("query Q($skip: Boolean!) { __typename cities(first: 1) @skip(if: $skip) { totalCount }"
         " ...more } fragment more on Query { viewer { id } }", {"skip": True}, False),
        ("query Q($id: ID!) { node(id: $id) { id } }", {"id": "bm90IGFuIGlk"}, False),
        ("query Q { conversations(first: 101) { totalCount } }", None, False),
        # introspection beside the engine's fields: graphql-core's executor runs it
        ("query Q { __schema { queryType { name } } cities(first: 1) { totalCount } }", None,
         True),
        ("query Q { ...intro } fragment intro on Query { __type(name: \"City\") { name } }",
         None, True),
    ],
)
async def test_a_prepared_operation_answers_as_the_pipeline_did(
    gateway: tuple[httpx.AsyncClient, strawberry.Schema, Spy],
    monkeypatch: pytest.MonkeyPatch,
    query: str,
    variables: dict[str, Any] | None,
    executor: bool,
) -> None:
    client, _schema, spy = gateway
    executed = []
    inner = prepared_module.execute

    def counting(*args: Any, **kwargs: Any) -> Any:
        executed.append(query)
        return inner(*args, **kwargs)

    monkeypatch.setattr(prepared_module, "execute", counting)
    body = {"query": query, "variables": variables}
    first, second = await twice(client, method="POST", url="/graphql", json=body,
                                headers=AS_USER)
    assert spy.calls == 1  # the second request took the prepared operation
    assert len(executed) == (1 if executor else 0)  # by graphql-core's executor, or not
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert first.json()["data"] is not None or "errors" in first.json()


async def test_a_root_directive_whose_argument_does_not_coerce_is_refused_alike(
    gateway: tuple[httpx.AsyncClient, strawberry.Schema, Spy],
) -> None:
    # given a prepared document whose root field is skipped by a nullable variable (valid: it
    # has a non-null default)
    client, _schema, spy = gateway
    query = "query Q($v: Boolean = false) { cities(first: 1) @skip(if: $v) { totalCount } }"
    await client.post("/graphql", json={"query": query}, headers=AS_USER)
    assert spy.calls == 1
    # when the variable is an explicit null (which @skip's Boolean! cannot take)
    response = await client.post(
        "/graphql", json={"query": query, "variables": {"v": None}}, headers=AS_USER
    )
    # then the request is refused as the pipeline refuses it: its own message and location
    [error] = response.json()["errors"]
    assert "Argument 'if' has invalid value" in error["message"]
    assert "GraphQL request" not in error["message"]
    assert error["locations"]
    assert spy.calls == 2  # answered by the pipeline


async def test_variables_that_do_not_coerce_are_refused_alike(
    gateway: tuple[httpx.AsyncClient, strawberry.Schema, Spy],
) -> None:
    client, _schema, spy = gateway
    await client.post("/graphql", json={"query": QUERY, "variables": {"n": 1}}, headers=AS_USER)
    assert spy.calls == 1
    bad = {"query": QUERY, "variables": {"n": "many"}}
    first, second = await twice(
        client, method="POST", url="/graphql", json=bad,
        headers={**AS_USER, "accept": "application/graphql-response+json"},
    )
    assert first.status_code == second.status_code == 400
    assert first.json() == second.json()
    assert "data" not in first.json()
    assert "Int cannot represent" in first.json()["errors"][0]["message"]
    assert spy.calls == 3  # answered by the pipeline both times


async def test_a_prepared_mutation_is_still_refused_over_get(
    gateway: tuple[httpx.AsyncClient, strawberry.Schema, Spy],
) -> None:
    client, schema, _spy = gateway
    mutation = (
        'mutation M { archiveConversation(input: {conversationId: "x"}) '
        "{ conversation { id } } }"
    )
    await client.post("/graphql", json={"query": mutation}, headers=AS_USER)
    assert len(prepared_of(schema)) == 1
    first, second = await twice(
        client, method="GET", url="/graphql", params={"query": mutation}, headers=AS_USER
    )
    assert first.status_code == second.status_code == 405
    assert first.json() == second.json()
    assert first.headers["allow"] == "POST"


async def test_a_document_of_two_operations_still_needs_a_name(
    gateway: tuple[httpx.AsyncClient, strawberry.Schema, Spy],
) -> None:
    client, _schema, spy = gateway
    document = "query A { cities(first: 1) { totalCount } } query B { viewer { id } }"
    named = await client.post(
        "/graphql", json={"query": document, "operationName": "A"}, headers=AS_USER
    )
    assert named.json() == {"data": {"cities": {"totalCount": 0}}}
    for _ in range(2):
        unnamed = await client.post("/graphql", json={"query": document}, headers=AS_USER)
        assert unnamed.json()["errors"][0]["message"] == (
            "Must provide operation name if query contains multiple operations."
        )
    other = await client.post(
        "/graphql", json={"query": document, "operationName": "B"}, headers=AS_USER
    )
    assert other.json() == {"data": {"viewer": None}}
    again = await client.post(
        "/graphql", json={"query": document, "operationName": "A"}, headers=AS_USER
    )
    assert again.content == named.content
    # A, the unnamed refusals (twice) and B went through the pipeline; A again did not
    assert spy.calls == 4


async def test_an_internal_error_is_masked_and_logged_alike(
    gateway: tuple[httpx.AsyncClient, strawberry.Schema, Spy],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, _schema, spy = gateway
    secret = "SELECT secret FROM chat_messages"
    query = {"query": "{ viewer { id } cities { totalCount } }"}
    await client.post("/graphql", json=query, headers=AS_USER)  # prepared, before the failure

    async def viewer_profile(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(secret)

    monkeypatch.setattr(shared, "viewer_profile", viewer_profile)
    caplog.set_level(logging.INFO)
    response = await client.post(
        "/graphql", json=query, headers={**AS_USER, "X-Request-Id": "req-prepared"}
    )
    assert spy.calls == 1
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"viewer": None, "cities": {"totalCount": 0}}
    [error] = body["errors"]
    assert error == {
        "message": "Internal server error.",
        "locations": [{"line": 1, "column": 3}],
        "path": ["viewer"],
        "extensions": {"code": "INTERNAL", "requestId": "req-prepared"},
    }
    assert secret not in response.text
    records = [r for r in caplog.records if "req-prepared" in r.getMessage()]
    assert any(r.exc_info and secret in str(r.exc_info[1]) for r in records), caplog.text


async def test_a_coded_error_is_answered_and_logged_alike(
    gateway: tuple[httpx.AsyncClient, strawberry.Schema, Spy], caplog: pytest.LogCaptureFixture
) -> None:
    client, _schema, spy = gateway
    caplog.set_level(logging.INFO)
    query = {"query": '{ node(id: "not-an-id") { id } }'}
    first, second = await twice(
        client, method="POST", url="/graphql", json=query, headers=AS_USER
    )
    assert spy.calls == 1
    assert first.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert first.content == second.content
    logged = [r.getMessage() for r in caplog.records if r.name == "gateway.errors"]
    assert len(logged) == 2, logged  # one line per request, either way
    assert logged[0].split(": ", 1)[1] == logged[1].split(": ", 1)[1] == (
        "BAD_USER_INPUT malformed id 'not-an-id'"
    )


def test_a_document_is_prepared_for_the_settings_that_accepted_it() -> None:
    from graphql import parse

    prepared = Prepared(size=2)
    settings, other = Settings(jwt_secret="x" * 32), Settings(jwt_secret="x" * 32)
    prepared.add("{ a }", None, parse("{ a }"), settings)
    assert prepared.get("{ a }", None, settings) is not None
    assert prepared.get("{ a }", None, other) is None  # other limits may refuse it
    assert prepared.get("{ a }", "A", settings) is None
    prepared.add("{ b }", None, parse("{ b }"), settings)
    prepared.add("{ c }", None, parse("{ c }"), settings)
    assert len(prepared) == 2 and prepared.get("{ a }", None, settings) is None
    # an operation name the document does not hold, a subscription: never prepared
    prepared.add("query Q { a }", "R", parse("query Q { a }"), settings)
    prepared.add("subscription { a }", None, parse("subscription { a }"), settings)
    assert prepared.get("query Q { a }", "R", settings) is None
    assert prepared.get("subscription { a }", None, settings) is None


async def test_an_exception_outside_any_field_is_masked_on_either_path(
    gateway: tuple[httpx.AsyncClient, strawberry.Schema, Spy],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in the engine itself (not in a field): strawberry hands it back as a path-less
    error no extension masked; the prepared path would raise it. Both answer INTERNAL."""
    from schema.engine.run import Run

    client, _schema, spy = gateway
    secret = "SECRET internal detail"

    async def broken(_run: Run) -> Any:
        raise KeyError(secret)

    monkeypatch.setattr(Run, "execute", broken)
    caplog.set_level(logging.INFO)
    answers = []
    for n in range(2):
        response = await client.post(
            "/graphql", json={"query": QUERY}, headers={**AS_USER, "X-Request-Id": f"req-bug-{n}"}
        )
        assert secret not in response.text
        [error] = response.json()["errors"]
        assert error["message"] == "Internal server error."
        assert error["extensions"] == {"code": "INTERNAL", "requestId": f"req-bug-{n}"}
        answers.append((response.status_code, response.json()["data"]))
        logged = [r for r in caplog.records if f"req-bug-{n}" in r.getMessage()]
        assert any(r.exc_info and secret in str(r.exc_info[1]) for r in logged), caplog.text
    assert spy.calls == 1  # the second went through the prepared operation
    assert answers[0] == answers[1] == (200, None)
