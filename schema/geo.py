"""Geography: City, Zoning, Zone."""

from __future__ import annotations

from uuid import UUID

import strawberry

from schema.common import Node


@strawberry.type
class City(Node):
    database_id: UUID
    name: str | None
    insee_code: str | None
    zones: list[Zone]


@strawberry.type
class Zoning(Node):
    database_id: UUID
    name: str | None
    city: City | None


@strawberry.type
class Zone(Node):
    database_id: UUID
    code: str | None
    label: str | None
    city: City | None
    zoning: Zoning | None
