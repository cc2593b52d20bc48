"""Feature flags (seed 001) and their decisions for the viewer."""

from __future__ import annotations

from datetime import datetime

import strawberry

from schema.common import Node


@strawberry.type(
    description="A feature flag: on for targeted users and a stable share of the rest."
)
class FeatureFlag(Node):
    key: str
    description: str | None
    enabled: bool
    rollout_percentage: int = strawberry.field(
        description="0 to 100: the share of users it is on for."
    )
    target_user_ids: list[strawberry.ID] = strawberry.field(
        description="Profile ids it is always on for (when enabled)."
    )
    target_emails: list[str]
    environments: list[str] = strawberry.field(
        description="The GATEWAY_ENV values it applies in; empty: every environment."
    )
    created_at: datetime
    updated_at: datetime


@strawberry.type(description="A flag as decided for the viewer.")
class FeatureValue:
    key: str
    enabled: bool
    reason: str = strawberry.field(
        description="unknown, disabled, environment, target_user, target_email, rollout, "
        "outside_rollout or no_user."
    )


@strawberry.input
class SetFeatureFlagInput:
    key: str = strawberry.field(description="Created when absent; lowercase, digits, _ . -")
    description: str | None = strawberry.UNSET
    enabled: bool | None = strawberry.UNSET
    rollout_percentage: int | None = strawberry.UNSET
    target_user_ids: list[strawberry.ID] | None = strawberry.UNSET
    target_emails: list[str] | None = strawberry.UNSET
    environments: list[str] | None = strawberry.UNSET


@strawberry.type
class SetFeatureFlagPayload:
    flag: FeatureFlag
