"""Documents and their typologies."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import strawberry

from schema.common import Node
from schema.geo import City, Zone, Zoning


@strawberry.type
class Typology(Node):
    database_id: UUID
    name: str | None


@strawberry.type
class Document(Node):
    database_id: UUID
    title: str | None
    url: str | None
    created_at: datetime | None
    city: City | None
    zoning: Zoning | None
    zone: Zone | None
    typology: Typology | None
