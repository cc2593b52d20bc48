"""``Query.projects`` and ``Query.viewer``."""

from __future__ import annotations

from gateway.store import projects as store
from gateway.store import shared
from schema.common import Connection, Info, build_connection, page_size
from schema.ids import encode_cursor, time_keyset
from schema.inputs import ProjectFilter
from schema.profile import Profile
from schema.project import Project


async def projects(
    info: Info, filter: ProjectFilter | None, first: int | None, after: str | None
) -> Connection[Project]:
    limit = page_size(first)
    keyset = time_keyset("project", after)
    context = info.context
    if context.is_anonymous:
        return Connection.empty()
    status = filter.status.value if filter and filter.status else None
    starred = filter.starred if filter else None
    db = await context.db()
    rows = await store.page(db, status=status, starred=starred, after=keyset, limit=limit + 1)

    async def count() -> int:
        return await store.count(await context.db(), status=status, starred=starred)

    return build_connection(
        rows,
        limit,
        Project.from_row,
        lambda r: encode_cursor("project", r["created_at"], r["id"]),
        count,
    )


async def viewer(info: Info) -> Profile | None:
    if info.context.viewer.user_id is None:
        return None
    row = await shared.viewer_profile(await info.context.db())
    return Profile.from_row(row) if row else None
