"""``Query.featureFlags`` and ``Mutation.setFeatureFlag``: admins and the service role only.

Writes run as the viewer: the policies of ``feature_flags`` let admins write (the service role
bypasses RLS), so the check here only turns a refusal into a clear error before any write.
"""

from __future__ import annotations

from typing import Any

from strawberry import UNSET

from gateway.context import Context
from gateway.errors import BadUserInput, Forbidden, Unauthenticated
from gateway.store import flags as store
from resolvers.ids import expect_id


async def may_manage(context: Context) -> None:
    if context.is_anonymous:
        raise Unauthenticated("sign in to manage feature flags")
    if not context.is_service and not await context.is_admin():
        raise Forbidden("feature flags are managed by admins and the service role")


def _given(value: Any) -> bool:
    """Whether an input field was sent (``UNSET``: left out)."""
    return value is not UNSET


def changes_of(given: Any) -> dict[str, Any]:
    """The columns an input sets, checked (omitted fields are left unchanged)."""
    changes: dict[str, Any] = {}
    if _given(given.description):
        changes["description"] = given.description
    if _given(given.enabled):
        if given.enabled is None:
            raise BadUserInput("enabled cannot be null")
        changes["enabled"] = given.enabled
    if _given(given.rollout_percentage):
        percentage = given.rollout_percentage
        if percentage is None or not 0 <= percentage <= 100:
            raise BadUserInput("rolloutPercentage must be between 0 and 100")
        changes["rollout_percentage"] = percentage
    if _given(given.target_user_ids):
        changes["target_user_ids"] = [
            expect_id(i, "Profile", argument="targetUserIds")[1]
            for i in given.target_user_ids or []
        ]
    for name in ("target_emails", "environments"):
        value = getattr(given, name)
        if _given(value):
            changes[name] = list(dict.fromkeys(value or []))
    return changes


async def set_flag(context: Context, given: Any) -> Any:
    """Create or change the flag ``given.key``; its id."""
    if not store.KEY.fullmatch(given.key):
        raise BadUserInput(f"key must be {store.KEY_RULE}")
    changes = changes_of(given)
    await may_manage(context)
    return await store.put(await context.db(), given.key, changes)
