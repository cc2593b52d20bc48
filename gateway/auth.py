"""Bearer tokens as Supabase issues them: HS256, ``sub`` (a UUID), ``role``, ``aud``, ``exp``.

No ``Authorization`` header means anonymous; a header with a bad token is an error, never a
silent downgrade to anonymous. Admin status is not a claim: it comes from ``profiles``.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from types import MappingProxyType
from typing import Any

import jwt

from gateway.db import ROLES, Viewer
from gateway.errors import Unauthenticated
from gateway.settings import Settings

ALGORITHM = "HS256"
LEEWAY_S = 30

# Tokens already verified, by (token, secret, audience): a client sends the same token with
# every request, and verifying it (base64, JSON, HMAC, claims) is a tenth of a small request's
# CPU. An entry serves only until the token's ``exp`` (plus the leeway), exactly as long as
# ``jwt.decode`` would accept it; only tokens that passed every check are kept.
VERIFIED_CACHE_SIZE = 1024
_verified: OrderedDict[tuple[str, str, str], tuple[Viewer, float]] = OrderedDict()


def viewer_from_header(header: str | None, settings: Settings) -> Viewer:
    if header is None:
        return Viewer.anonymous()
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return viewer_from_token(token.strip(), settings)


def viewer_from_token(token: str, settings: Settings) -> Viewer:
    if not settings.jwt_secret:
        raise Unauthenticated("this gateway has no JWT_SECRET: tokens cannot be verified")
    key = (token, settings.jwt_secret, settings.jwt_audience)
    cached = _verified.get(key)
    if cached is not None:
        viewer, expires = cached
        if time.time() <= expires:
            return viewer
        _verified.pop(key, None)
    viewer, expires = _verify(token, settings)
    _verified[key] = (viewer, expires)
    if len(_verified) > VERIFIED_CACHE_SIZE:
        _verified.popitem(last=False)
    return viewer


def _verify(token: str, settings: Settings) -> tuple[Viewer, float]:
    """The token's viewer and until when it may be accepted (``exp`` plus the leeway)."""
    assert settings.jwt_secret
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            leeway=LEEWAY_S,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"invalid token: {exc}") from None
    role = claims.get("role", "authenticated")
    if role not in ROLES:
        raise Unauthenticated(f"invalid token: role {role!r} is not allowed")
    try:
        sub = str(uuid.UUID(str(claims["sub"])))
    except ValueError:
        raise Unauthenticated("invalid token: sub must be a UUID") from None
    expires = float(claims["exp"]) + LEEWAY_S
    # Read-only: the viewer may serve every request that sends this token.
    frozen = MappingProxyType(claims)
    if role == "anon":
        return Viewer(role="anon", claims=frozen), expires
    user_id = sub if role == "authenticated" else None
    return Viewer(role=role, user_id=user_id, claims=frozen), expires


def issue_token(
    settings: Settings, user_id: str, *, role: str = "authenticated", ttl_s: int = 3600
) -> str:
    if not settings.jwt_secret:
        raise ValueError("JWT_SECRET is not set")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    now = int(time.time())
    claims = {
        "sub": str(uuid.UUID(user_id)),
        "role": role,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def expires_at(viewer: Viewer) -> float | None:
    """Until when the viewer's token is accepted (``exp`` plus the leeway); None without one
    (anonymous). A subscription ends then."""
    exp = viewer.claims.get("exp")
    return float(exp) + LEEWAY_S if isinstance(exp, (int, float)) else None
