"""Shared graph pieces: the Node interface, Source, Relay connections, page-size rules.

The types of ``schema/`` declare the graph's SDL only. Every field is executed by the read
engine (``schema.engine``) from its declaration in ``gateway.store.graph``: no type here has a
resolver that runs. A field that takes arguments is declared with a signature whose body is
``declared()``.
"""

from __future__ import annotations

from enum import Enum
from typing import Generic, NoReturn, TypeVar

import strawberry

from gateway.context import Context
from gateway.errors import BadUserInput

Info = strawberry.Info[Context, None]

T = TypeVar("T")

DEFAULT_FIRST = 20
MAX_FIRST = 100


def declared() -> NoReturn:
    """The body of a field declared with arguments: strawberry reads its signature, the read
    engine executes it."""
    raise AssertionError("every field is executed by schema.engine")


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


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int = strawberry.field(
        description="Size of the whole filtered list, whatever `after` is."
    )


def page_size(first: int | None) -> int:
    """``first`` as given (None means the default), checked against 1..100."""
    if first is None:
        return DEFAULT_FIRST
    if not 1 <= first <= MAX_FIRST:
        raise BadUserInput(f"first must be between 1 and {MAX_FIRST}, got {first}")
    return first
