"""Public reference data: ``Query.cities`` and ``Query.documents``."""

from __future__ import annotations

from gateway.store import shared
from schema.common import Connection, Info, build_connection, page_size
from schema.document import Document
from schema.geo import City
from schema.ids import cursor_uuid, decode_cursor, encode_cursor, expect_id
from schema.inputs import DocumentFilter


async def cities(
    info: Info, search: str | None, first: int | None, after: str | None
) -> Connection[City]:
    limit = page_size(first)
    keyset = None
    if after is not None:
        name, row_id = decode_cursor("city", after, 2)
        keyset = (name or "", cursor_uuid(row_id))
    context = info.context
    db = await context.db()
    rows = await shared.cities_page(db, search=search, after=keyset, limit=limit + 1)

    async def count() -> int:
        return await shared.cities_count(await context.db(), search=search)

    return build_connection(
        rows, limit, City.from_row, lambda r: encode_cursor("city", r["name"], r["id"]), count
    )


async def documents(
    info: Info, filter: DocumentFilter | None, first: int | None, after: str | None
) -> Connection[Document]:
    limit = page_size(first)
    city_id = zone_id = None
    if filter is not None and filter.city_id is not None:
        city_id = expect_id(filter.city_id, "City", argument="cityId")[1]
    if filter is not None and filter.zone_id is not None:
        zone_id = expect_id(filter.zone_id, "Zone", argument="zoneId")[1]
    keyset = None
    if after is not None:
        title, row_id = decode_cursor("document", after, 2)
        keyset = (title or "", cursor_uuid(row_id))
    context = info.context
    db = await context.db()
    rows = await shared.documents_page(
        db, city_id=city_id, zone_id=zone_id, after=keyset, limit=limit + 1
    )

    async def count() -> int:
        return await shared.documents_count(await context.db(), city_id=city_id, zone_id=zone_id)

    return build_connection(
        rows,
        limit,
        Document.from_row,
        lambda r: encode_cursor("document", r["title"] or "", r["id"]),
        count,
    )
