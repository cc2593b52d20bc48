"""Documents and their typologies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import strawberry

from gateway.store import Row
from gateway.store.shared import embedded
from schema.common import Info, Node, later
from schema.geo import City, Zone, Zoning, load_city, load_zone, load_zoning
from schema.ids import to_global_id


@strawberry.type
class Typology(Node):
    database_id: UUID
    name: str | None

    @classmethod
    def from_row(cls, row: Any) -> Typology:
        return cls(
            id=strawberry.ID(to_global_id("Typology", row["id"])),
            database_id=row["id"],
            name=row["name"],
        )


@strawberry.type
class Document(Node):
    database_id: UUID
    title: str | None
    url: str | None
    created_at: datetime | None
    city_id: strawberry.Private[UUID | None]
    zoning_id: strawberry.Private[UUID | None]
    zone_id: strawberry.Private[UUID | None]
    typology_id: strawberry.Private[UUID | None]
    # Related rows the store embedded (see ``gateway.store.shared.DOCUMENT_RELATED``).
    city_row: strawberry.Private[Row | None] = None
    zone_row: strawberry.Private[Row | None] = None
    typology_row: strawberry.Private[Row | None] = None

    @classmethod
    def from_row(cls, row: Any) -> Document:
        return cls(
            id=strawberry.ID(to_global_id("Document", row["id"])),
            database_id=row["id"],
            title=row["title"],
            url=row["url"],
            created_at=row["created_at"],
            city_id=row["city_id"],
            zoning_id=row["zoning_id"],
            zone_id=row["zone_id"],
            typology_id=row["typology_id"],
            city_row=embedded(row.get("city_row")),
            zone_row=embedded(row.get("zone_row")),
            typology_row=embedded(row.get("typology_row")),
        )

    @strawberry.field
    def city(self, info: Info) -> City | None:
        if self.city_row is not None:
            return City.from_row(self.city_row)
        if self.city_id is None:
            return None
        return later(load_city(info, self.city_id))

    @strawberry.field
    def zoning(self, info: Info) -> Zoning | None:
        return later(load_zoning(info, self.zoning_id)) if self.zoning_id is not None else None

    @strawberry.field
    def zone(self, info: Info) -> Zone | None:
        if self.zone_row is not None:
            return Zone.from_row(self.zone_row)
        if self.zone_id is None:
            return None
        return later(load_zone(info, self.zone_id))

    @strawberry.field
    def typology(self, info: Info) -> Typology | None:
        if self.typology_row is not None:
            return Typology.from_row(self.typology_row)
        if self.typology_id is None:
            return None
        return later(_load_typology(info, self.typology_id))


async def _load_typology(info: Info, typology_id: UUID) -> Typology | None:
    row = await info.context.loaders.typology.load(typology_id)
    return Typology.from_row(row) if row else None


async def load_document(info: Info, document_id: UUID | None) -> Document | None:
    if document_id is None:
        return None
    row = await info.context.loaders.document.load(document_id)
    return Document.from_row(row) if row else None


async def load_documents(info: Info, ids: Sequence[UUID] | None) -> list[Document]:
    """Documents in the order of ``ids``; ids of missing rows are skipped."""
    if not ids:
        return []
    rows = await info.context.loaders.document.load_many(list(ids))
    return [Document.from_row(r) for r in rows if r]
