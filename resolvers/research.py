"""``Query.researchHistory`` (whose research it lists) and ``Mutation.recordResearch``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from gateway.context import Context
from gateway.errors import BadUserInput, NotFound
from gateway.store import chat_writes, project_writes
from gateway.store import research as store
from resolvers.acting import acting_user, may_write_for, owner_for_new_rows, signed_in
from resolvers.chat import document_ids
from resolvers.ids import optional_id
from resolvers.projects import BOUNDS


def whose(context: Context) -> UUID | None:
    """The viewer's own research (admins' too); the service role's subject's, or everyone's
    for a service token without one."""
    return acting_user(context)


async def record_research(context: Context, given: Any) -> dict[str, Any]:
    signed_in(context, "record research")
    if not given.address_input.strip():
        raise BadUserInput("addressInput must not be empty")
    if given.success is None:
        raise BadUserInput("success cannot be null")
    for name, argument in (("geo_lon", "geoLon"), ("geo_lat", "geoLat")):
        value = getattr(given, name)
        if value is not None and not -BOUNDS[name] <= value <= BOUNDS[name]:
            raise BadUserInput(f"{argument} must be between -{BOUNDS[name]} and {BOUNDS[name]}")
    values: dict[str, Any] = {
        "address_input": given.address_input,
        "search_intent": given.search_intent,
        "geocoded_address": given.geocoded_address,
        "city_id": optional_id(given.city_id, "City", "cityId"),
        "zone_id": optional_id(given.zone_id, "Zone", "zoneId"),
        "geo_lon": given.geo_lon,
        "geo_lat": given.geo_lat,
        "documents_found": document_ids(given.document_ids),
        "success": given.success,
        "error_reason": given.error_reason,
        "conversation_id": optional_id(given.conversation_id, "V2Conversation", "conversationId"),
        "project_id": optional_id(given.project_id, "Project", "projectId"),
    }
    owner = owner_for_new_rows(context)
    db = await context.db()
    for name, table, noun in (("city_id", "cities", "city"), ("zone_id", "zones", "zone")):
        if values[name] is not None and await project_writes.missing(db, table, [values[name]]):
            raise BadUserInput(f"{noun}Id names no {noun}")
    if await project_writes.missing(db, "documents", values["documents_found"]):
        raise BadUserInput("documentIds names a document that does not exist")
    if values["conversation_id"] is not None:
        found = await chat_writes.conversation_owner(db, "v2", values["conversation_id"])
        if found is None or not may_write_for(context, found) or found != owner:
            raise NotFound("conversation not found")
    if values["project_id"] is not None:
        found = await project_writes.project_owner(db, values["project_id"])
        if found is None or not may_write_for(context, found) or found != owner:
            raise NotFound("project not found")
    return {"id": await store.record(db, owner=owner, values=values)}
