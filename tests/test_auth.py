"""Bearer tokens (DESIGN §4, issue 5): HS256 only with ``exp``, ``sub`` (a UUID) and ``aud``
required, a 30 s leeway, an allowed ``role``. A bad token is HTTP 401 ``UNAUTHENTICATED`` with a
GraphQL-shaped body and no SQL at all; no ``Authorization`` header is an anonymous viewer."""

from __future__ import annotations

import base64
import json
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import jwt.warnings
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import StatementCounter
from gateway.http.app import create_app
from gateway.settings import Settings
from tests.conftest import JWT_SECRET, Server, bearer, create_database, drop_database


@pytest.fixture(scope="module")
async def database(server: Server, template: str) -> AsyncIterator[str]:
    """One database for the module: these tests barely write (each writes its own rows)."""
    name = await create_database(server, template)
    yield name
    await drop_database(server, name)


QUERY = {"query": "{ viewer { id } conversations { totalCount } }"}
USER = "0b7f2a4e-9d51-4c7e-8a55-2f1c1f0c9a11"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "sub": USER,
        "role": "authenticated",
        "aud": "authenticated",
        "iat": now,
        "exp": now + 3600,
    }
    for key, value in overrides.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return values


def sign(payload: dict[str, Any], *, secret: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    with warnings.catch_warnings():
        # HS384/HS512 want a longer key than the test secret: irrelevant to a refused token.
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode(payload, secret, algorithm=algorithm)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A token put together by hand: PyJWT refuses to encode some of these."""
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(payload).encode())
    return f"{head}.{body}.{b64(signature)}"


def forged_rs256() -> str:
    # An RS256 header over a valid payload, "signed" with an HMAC of the shared secret (the
    # classic RS/HS confusion the other way round): the algorithm is pinned, so it is refused.
    import hashlib
    import hmac

    head = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims()).encode())
    mac = hmac.new(JWT_SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


BAD_TOKENS: dict[str, Any] = {
    "forged signature": lambda: sign(claims(), secret="another-secret-0123456789-0123456789"),
    "expired beyond the leeway": lambda: sign(claims(exp=int(time.time()) - 60)),
    "not yet valid beyond the leeway": lambda: sign(claims(nbf=int(time.time()) + 120)),
    "wrong audience": lambda: sign(claims(aud="someone-else")),
    "alg none": lambda: unsigned({"alg": "none", "typ": "JWT"}, claims()),
    "alg None, upper case": lambda: unsigned({"alg": "None", "typ": "JWT"}, claims()),
    "alg none with a signature": lambda: unsigned({"alg": "none"}, claims(), b"sig"),
    "RS256 header": forged_rs256,
    "HS512, right secret": lambda: sign(claims(), algorithm="HS512"),
    "HS384, right secret": lambda: sign(claims(), algorithm="HS384"),
    "no exp": lambda: sign(claims(exp=None)),
    "no sub": lambda: sign(claims(sub=None)),
    "no aud": lambda: sign(claims(aud=None)),
    "non-UUID sub": lambda: sign(claims(sub="alice")),
    "empty sub": lambda: sign(claims(sub="")),
    "numeric sub": lambda: sign(claims(sub=42)),
    "role postgres": lambda: sign(claims(role="postgres")),
    "role supabase_admin": lambda: sign(claims(role="supabase_admin")),
    "role authenticator": lambda: sign(claims(role="authenticator")),
    "role as a list": lambda: sign(claims(role=["service_role"])),
    "garbage": lambda: "not-a-jwt",
    "two segments": lambda: "abc.def",
    "bad base64": lambda: "@@@.@@@.@@@",
    "payload not JSON": lambda: b64(b'{"alg": "HS256"}') + "." + b64(b"[") + ".x",
}


def assert_unauthenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["message"]
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_a_bad_token_is_401_without_sql(
    case: str, client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    token = BAD_TOKENS[case]()
    response = await client.post(
        "/graphql", json=QUERY, headers={"Authorization": f"Bearer {token}"}
    )
    assert_unauthenticated(response)
    assert token not in response.text or len(token) < 12
    assert statements.total == 0


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Token abc",
        "",
        "bearer-but-not-really",
    ],
)
async def test_a_header_that_is_not_a_bearer_token_is_401(
    header: str, client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    response = await client.post("/graphql", json=QUERY, headers={"Authorization": header})
    assert_unauthenticated(response)
    assert statements.total == 0


async def test_a_bad_token_over_get_is_401(client: httpx.AsyncClient) -> None:
    token = sign(claims(aud="nope"))
    response = await client.get(
        "/graphql", params=QUERY, headers={"Authorization": f"Bearer {token}"}
    )
    assert_unauthenticated(response)


async def test_no_header_is_the_anonymous_viewer(
    client: httpx.AsyncClient, statements: StatementCounter
) -> None:
    response = await client.post("/graphql", json=QUERY)
    assert response.status_code == 200
    assert response.json() == {"data": {"viewer": None, "conversations": {"totalCount": 0}}}
    # anonymous: no private SQL is even attempted
    assert statements.total == 0


async def test_a_valid_token_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json=QUERY, headers=bearer(USER))
    assert response.status_code == 200, response.text
    assert "errors" not in response.json()


async def test_an_expired_token_within_the_leeway_is_accepted(client: httpx.AsyncClient) -> None:
    token = sign(claims(exp=int(time.time()) - 10, iat=int(time.time()) - 3600))
    response = await client.post(
        "/graphql", json=QUERY, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text


async def test_a_token_valid_from_within_the_leeway_is_accepted(client: httpx.AsyncClient) -> None:
    token = sign(claims(nbf=int(time.time()) + 10))
    response = await client.post(
        "/graphql", json=QUERY, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text


async def test_the_scheme_is_case_insensitive(client: httpx.AsyncClient) -> None:
    token = sign(claims())
    response = await client.post(
        "/graphql", json=QUERY, headers={"Authorization": f"bearer {token}"}
    )
    assert response.status_code == 200, response.text


async def test_role_claims_map_to_the_three_viewer_roles(client: httpx.AsyncClient) -> None:
    for role in ("anon", "authenticated", "service_role"):
        token = sign(claims(role=role))
        response = await client.post(
            "/graphql", json=QUERY, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, (role, response.text)


async def test_an_is_admin_claim_grants_nothing(client: httpx.AsyncClient, owner: Any) -> None:
    # admin status comes from profiles.is_admin, never from the token
    from tests.factories import make_user, make_v1_conversation

    other = await make_user(owner, "Other")
    await make_v1_conversation(owner, other)
    me = await make_user(owner, "Me")
    token = sign(claims(sub=str(me), is_admin=True, app_metadata={"role": "admin"}))
    response = await client.post(
        "/graphql", json=QUERY, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.json()["data"]["conversations"]["totalCount"] == 0


@pytest.fixture
async def custom_audience(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(jwt_secret=JWT_SECRET, jwt_audience="mwplu-api", env="test")
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        yield client


async def test_the_audience_is_configurable(custom_audience: httpx.AsyncClient) -> None:
    good = sign(claims(aud="mwplu-api"))
    response = await custom_audience.post(
        "/graphql", json=QUERY, headers={"Authorization": f"Bearer {good}"}
    )
    assert response.status_code == 200, response.text
    default = sign(claims(aud="authenticated"))
    response = await custom_audience.post(
        "/graphql", json=QUERY, headers={"Authorization": f"Bearer {default}"}
    )
    assert_unauthenticated(response)


def test_the_audience_comes_from_the_environment() -> None:
    settings = Settings.from_env({"JWT_AUDIENCE": "mwplu-api"})
    assert settings.jwt_audience == "mwplu-api"
    assert Settings.from_env({}).jwt_audience == "authenticated"


async def test_without_a_secret_every_token_is_refused(engine: AsyncEngine) -> None:
    app = create_app(Settings(env="test"), engine=engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        response = await client.post("/graphql", json=QUERY, headers=bearer(USER))
        assert_unauthenticated(response)
        anonymous = await client.post("/graphql", json=QUERY)
        assert anonymous.status_code == 200


def test_sub_is_normalised_to_a_uuid() -> None:
    from gateway.auth import viewer_from_token

    upper = str(uuid.UUID(USER)).upper()
    viewer = viewer_from_token(sign(claims(sub=upper)), Settings(jwt_secret=JWT_SECRET))
    assert viewer.user_id == USER
    assert viewer.role == "authenticated"


def test_a_verified_token_is_remembered_only_while_it_is_valid() -> None:
    from gateway.auth import LEEWAY_S, issue_token, viewer_from_token

    settings = Settings(jwt_secret=JWT_SECRET)
    user = str(uuid.uuid4())
    token = issue_token(settings, user)
    first = viewer_from_token(token, settings)
    assert viewer_from_token(token, settings) is first  # verified once
    with pytest.raises(TypeError):
        first.claims["role"] = "service_role"  # type: ignore[index]  # shared: read-only
    # another secret does not find the entry
    with pytest.raises(Exception, match="invalid token"):
        viewer_from_token(token, Settings(jwt_secret="another-secret-" + "x" * 40))
    # a token inside the leeway is accepted, and forgotten once past it
    almost = issue_token(settings, user, ttl_s=-(LEEWAY_S - 1))
    assert viewer_from_token(almost, settings).user_id == user
    time.sleep(1.5)
    with pytest.raises(Exception, match="token expired"):
        viewer_from_token(almost, settings)
