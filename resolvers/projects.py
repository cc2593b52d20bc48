"""``createProject`` and ``updateProject``: v2 projects, written as the viewer (RLS: owners
write their own; admins read everyone's and write only their own)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from strawberry import UNSET

from gateway.context import Context
from gateway.errors import BadUserInput, NotFound
from gateway.store import project_writes as store
from resolvers.acting import owner_for_new_rows, signed_in
from resolvers.ids import expect_id

PROJECT_TYPES = ("construction", "extension", "renovation", "amenagement", "lotissement", "other")
FREQUENCIES = ("daily", "weekly", "monthly")
# decimal(10, 7): three digits before the point
BOUNDS = {"geo_lon": Decimal(180), "geo_lat": Decimal(90)}
# Not nullable in the graph: an explicit null is refused rather than stored.
NOT_NULL = ("starred", "status", "plu_alert_enabled")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def columns_of(given: Any, names: dict[str, str]) -> dict[str, Any]:
    """The columns an input sets (fields left out are not), each checked."""
    values: dict[str, Any] = {}
    for name in names:
        value = getattr(given, name, UNSET)
        if value is UNSET:
            continue
        argument = _camel(name)
        if value is None:
            if name in NOT_NULL:
                raise BadUserInput(f"{argument} cannot be null")
        elif name in ("main_city_id", "main_zone_id"):
            type_name = "City" if name == "main_city_id" else "Zone"
            value = expect_id(value, type_name, argument=argument)[1]
        elif name == "project_type" and value not in PROJECT_TYPES:
            raise BadUserInput(f"projectType must be one of {', '.join(PROJECT_TYPES)}")
        elif name == "plu_check_frequency" and value not in FREQUENCIES:
            raise BadUserInput(f"pluCheckFrequency must be one of {', '.join(FREQUENCIES)}")
        elif name in BOUNDS and not -BOUNDS[name] <= value <= BOUNDS[name]:
            raise BadUserInput(f"{argument} must be between -{BOUNDS[name]} and {BOUNDS[name]}")
        elif name == "status":
            value = value.value
        values[name] = value
    return values


async def _check_places(context: Context, values: dict[str, Any]) -> None:
    db = await context.db()
    places = (("main_city_id", "cities", "city"), ("main_zone_id", "zones", "zone"))
    for name, table, noun in places:
        if values.get(name) is not None and await store.missing(db, table, [values[name]]):
            raise BadUserInput(f"{_camel(name)} names no {noun}")


async def create_project(context: Context, given: Any) -> UUID:
    signed_in(context, "create projects")
    values = columns_of(given, store.CREATABLE)
    owner = owner_for_new_rows(context)
    await _check_places(context, values)
    return await store.create(await context.db(), owner=owner, values=values)


async def update_project(context: Context, given: Any) -> UUID:
    signed_in(context, "edit projects")
    project_id = expect_id(given.project_id, "Project", argument="projectId")[1]
    changes = columns_of(given, store.UPDATABLE)
    await _check_places(context, changes)
    updated = await store.update(await context.db(), project_id, changes)
    if updated is None:
        raise NotFound("project not found")
    return updated
