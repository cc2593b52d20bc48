"""The request context: who is asking, their lazily opened transaction, and their loaders.

The transaction opens on the first statement, so a request refused before execution (limits,
validation, an anonymous viewer asking for private data) sends no SQL at all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db import Db, Viewer, become
from gateway.settings import Settings
from gateway.store import shared
from loaders import Loaders, build_loaders


@dataclass
class Context:
    settings: Settings
    engine: AsyncEngine
    viewer: Viewer
    request_id: str
    loaders: Loaders = field(init=False)
    _conn: AsyncConnection | None = field(default=None, init=False)
    _db: Db | None = field(default=None, init=False)
    _open_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _is_admin: bool | None = field(default=None, init=False)
    _finished: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.loaders = build_loaders(self.db)

    async def db(self) -> Db:
        """The request's transaction, opened (as the viewer) on first use."""
        if self._db is not None:
            return self._db
        async with self._open_lock:
            if self._finished:
                # graphql-core leaves sibling resolvers running after a field fails; once the
                # response is decided they must not open a second transaction.
                raise RuntimeError("the request's transaction is finished")
            if self._db is None:
                conn = await self.engine.connect()
                try:
                    await conn.begin()
                    db = Db(conn)
                    await become(db, self.viewer, self.settings)
                except BaseException:
                    await conn.close()
                    raise
                self._conn, self._db = conn, db
        return self._db

    @property
    def used_database(self) -> bool:
        return self._conn is not None

    async def finish(self, *, commit: bool) -> None:
        """Commit or roll back and return the connection to the pool; shielded so that a
        cancelled request still closes its transaction."""
        async with self._open_lock:
            self._finished = True
            conn, db, self._conn, self._db = self._conn, self._db, None, None
        if conn is None or db is None:
            return
        await asyncio.shield(_close(conn, db, commit))

    async def is_admin(self) -> bool:
        """``profiles.is_admin`` of the viewer (never a token claim)."""
        if self._is_admin is None:
            self._is_admin = self.viewer.role == "authenticated" and await shared.viewer_is_admin(
                await self.db()
            )
        return self._is_admin

    @property
    def is_service(self) -> bool:
        return self.viewer.role == "service_role"

    @property
    def is_anonymous(self) -> bool:
        return self.viewer.role == "anon"


async def _close(conn: AsyncConnection, db: Db, commit: bool) -> None:
    # Wait for a statement still running for an abandoned sibling resolver: one connection
    # runs one statement at a time, and the Db lock serialises them.
    await db.hold()
    try:
        if conn.in_transaction():
            if commit:
                await conn.commit()
            else:
                await conn.rollback()
    finally:
        await conn.close()
