"""Geography: City, Zoning, Zone."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import strawberry

from schema.common import Info, Node, later
from schema.ids import to_global_id


@strawberry.type
class City(Node):
    database_id: UUID
    name: str | None
    insee_code: str | None

    @classmethod
    def from_row(cls, row: Any) -> City:
        return cls(
            id=strawberry.ID(to_global_id("City", row["id"])),
            database_id=row["id"],
            name=row["name"],
            insee_code=row["insee_code"],
        )

    @strawberry.field
    async def zones(self, info: Info) -> list[Zone]:
        rows = await info.context.loaders.zones_by_city.load(self.database_id)
        return [Zone.from_row(r) for r in rows]


@strawberry.type
class Zoning(Node):
    database_id: UUID
    name: str | None
    city_id: strawberry.Private[UUID | None]

    @classmethod
    def from_row(cls, row: Any) -> Zoning:
        return cls(
            id=strawberry.ID(to_global_id("Zoning", row["id"])),
            database_id=row["id"],
            name=row["name"],
            city_id=row["city_id"],
        )

    @strawberry.field
    async def city(self, info: Info) -> City | None:
        return await load_city(info, self.city_id)


@strawberry.type
class Zone(Node):
    database_id: UUID
    code: str | None
    label: str | None
    city_id: strawberry.Private[UUID | None]
    zoning_id: strawberry.Private[UUID | None]

    @classmethod
    def from_row(cls, row: Any) -> Zone:
        return cls(
            id=strawberry.ID(to_global_id("Zone", row["id"])),
            database_id=row["id"],
            code=row["code"],
            label=row["label"],
            city_id=row["city_id"],
            zoning_id=row["zoning_id"],
        )

    @strawberry.field
    def city(self, info: Info) -> City | None:
        return later(load_city(info, self.city_id)) if self.city_id is not None else None

    @strawberry.field
    def zoning(self, info: Info) -> Zoning | None:
        return later(load_zoning(info, self.zoning_id)) if self.zoning_id is not None else None


async def load_city(info: Info, city_id: UUID | None) -> City | None:
    if city_id is None:
        return None
    row = await info.context.loaders.city.load(city_id)
    return City.from_row(row) if row else None


async def load_zoning(info: Info, zoning_id: UUID | None) -> Zoning | None:
    if zoning_id is None:
        return None
    row = await info.context.loaders.zoning.load(zoning_id)
    return Zoning.from_row(row) if row else None


async def load_zone(info: Info, zone_id: UUID | None) -> Zone | None:
    if zone_id is None:
        return None
    row = await info.context.loaders.zone.load(zone_id)
    return Zone.from_row(row) if row else None


