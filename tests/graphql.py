"""Helpers for calling the graph over HTTP in tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from resolvers.ids import to_global_id
from tests.conftest import bearer


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    user: uuid.UUID | None = None,
    role: str = "authenticated",
) -> dict[str, Any]:
    """POST a query as ``user`` (anonymous when None); the HTTP status must be 200."""
    headers = bearer(str(user), role=role) if user is not None else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


def gid(type_name: str, database_id: uuid.UUID) -> str:
    return to_global_id(type_name, database_id)


def ok(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]
