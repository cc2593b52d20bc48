"""Shared graph pieces: the Node interface, Source, Relay connections, page-size rules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from typing import Any, Generic, TypeVar, cast

import strawberry

from gateway.context import Context
from gateway.errors import BadUserInput

Info = strawberry.Info[Context, None]

T = TypeVar("T")

DEFAULT_FIRST = 20
MAX_FIRST = 100


@strawberry.enum
class Source(Enum):
    V1 = "v1"
    V2 = "v2"


@strawberry.interface(description="An object with a globally unique, opaque id.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None
    start_cursor: str | None


def _edge_cursor(root: Edge[Any]) -> str:
    # Encoded when asked for: most queries want the nodes of a page, not every cursor.
    return root.encode_cursor(root.row)


@strawberry.type
class Edge(Generic[T]):
    cursor: str = strawberry.field(resolver=_edge_cursor)
    node: T
    row: strawberry.Private[Any]
    encode_cursor: strawberry.Private[Callable[[Any], str]]


def later(awaitable: Awaitable[T]) -> T:
    """``awaitable`` returned from a sync resolver in place of its value.

    graphql-core awaits whatever awaitable a resolver returns. A resolver that only sometimes
    needs a loader is therefore sync, and returns its value on the spot when no I/O is needed
    (an embedded row, a null id, no ids): an async resolver would cost a coroutine, its await
    and a gathered task per field even then. Strawberry reads the field's type from the
    annotation, so the awaitable is passed off as the value (the cast is for the type checker
    only).
    """
    return cast(T, awaitable)


async def _zero() -> int:
    return 0


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="Size of the whole filtered list, whatever `after` is.")  # type: ignore[untyped-decorator]
    async def total_count(self) -> int:
        return await self.count()

    @classmethod
    def empty(cls) -> Connection[Any]:
        return cls(
            edges=[],
            page_info=PageInfo(has_next_page=False, end_cursor=None, start_cursor=None),
            count=_zero,
        )


def page_size(first: int | None) -> int:
    """``first`` as given (None means the default), checked against 1..100."""
    if first is None:
        return DEFAULT_FIRST
    if not 1 <= first <= MAX_FIRST:
        raise BadUserInput(f"first must be between 1 and {MAX_FIRST}, got {first}")
    return first


def build_connection(
    rows: Sequence[Any],
    limit: int,
    node: Callable[[Any], T],
    cursor: Callable[[Any], str],
    count: Callable[[], Awaitable[int]],
) -> Connection[T]:
    """A connection over ``rows`` fetched with ``limit + 1`` (the extra row tells whether
    there is a next page and is not returned)."""
    page = rows[:limit]
    edges = [Edge(node=node(r), row=r, encode_cursor=cursor) for r in page]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > limit,
            end_cursor=cursor(page[-1]) if page else None,
            start_cursor=cursor(page[0]) if page else None,
        ),
        count=count,
    )


