"""Who a write acts as: the viewer, or — where the viewer may not write a table itself (v1 has no
write policies; analytics none for users) — the service role, after the resolver checked the
viewer's rights in the same transaction."""

from __future__ import annotations

from uuid import UUID

from gateway.context import Context
from gateway.db import Viewer, become
from gateway.errors import BadUserInput, Unauthenticated

NIL = UUID(int=0)


def signed_in(context: Context, doing: str) -> None:
    if context.is_anonymous:
        raise Unauthenticated(f"sign in to {doing}")


def acting_user(context: Context) -> UUID | None:
    """The user the viewer is: a user's id, or a service token's ``sub`` when it is one."""
    raw = context.viewer.user_id or context.viewer.claims.get("sub")
    try:
        return UUID(str(raw)) if raw else None
    except ValueError:
        return None


def owner_for_new_rows(context: Context) -> UUID:
    """Whose rows a create makes: the user's, or for the service role its token's subject."""
    user = acting_user(context)
    if user is None:
        raise BadUserInput("a service token needs a user id as its subject (sub) to create rows")
    return user


def may_write_for(context: Context, owner: UUID) -> bool:
    """Owners write their own rows, the service role anyone's; admins only their own."""
    return context.is_service or owner == acting_user(context)


async def as_service(context: Context) -> None:
    await become(await context.db(), Viewer.service(), context.settings)


async def as_viewer(context: Context) -> None:
    await become(await context.db(), context.viewer, context.settings)
