"""The read engine's statements, built from the declarations of ``gateway.store.graph``.

Each returns records whose first column is the row's id (NULL in a page whose ids nobody
reads), then the requested column expressions in order (``columns``, SQL over the alias
``t``), so that one layout serves a row however it was reached: by id, in a page, or in a
root listing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.db import Db
from gateway.store.graph import Entity, Page
from gateway.store.keyset import Keyset, limit_clause


def key(sql: str) -> str:
    """A key (a uuid column or expression) as the engine reads it: as text. The rows of a
    response are found by their keys, thousands of times a response (a page's parents, an
    author per message, the ids to read next), and a ``str`` hashes and compares in a
    fraction of the time of the driver's uuid objects, whose first hash builds an ``int``;
    PostgreSQL's CPU for the cast did not measurably move. The driver writes a ``str`` into a
    uuid parameter, so keys go back into statements as they are."""
    return f"({sql})::text"


def keys(sql: str) -> str:
    """An array of keys (``key``) as the engine reads it."""
    return f"({sql})::text[]"


def select_list(columns: Sequence[str], *, keyed: bool = True) -> str:
    """The id (``key``), then ``columns``; without ``keyed``, NULL in the id's place (nobody
    reads it: the row keeps its layout)."""
    return ", ".join((key("t.id") if keyed else "NULL::text", *columns))


async def by_ids(
    db: Db, entity: Entity, columns: Sequence[str], ids: Sequence[str]
) -> list[Any]:
    """The visible rows of ``entity`` whose id is in ``ids`` (any order)."""
    sql = (
        f"SELECT {select_list(columns)} FROM {entity.table} t "
        "WHERE t.id = ANY(CAST(:ids AS uuid[]))"
    )
    return await db.fetch(sql, {"ids": list(ids)})


async def by_ids_together(
    db: Db, wanted: Sequence[tuple[Entity, Sequence[str], Sequence[str]]]
) -> list[list[Any]]:
    """``by_ids`` of several entities in one statement (one round trip instead of one each):
    each entity's rows come as an array of records, in ``wanted``'s order. Records in arrays
    cost PostgreSQL and the driver more per row than plain rows, so this is for small reads
    (a mutation's payload, a level of a few rows per type). The driver decodes a record's
    fields by the types it knows without asking the server: every declared column is checked
    to read alike both ways on a fresh connection (``tests/test_engine.py``)."""
    parts = []
    params: dict[str, object] = {}
    for index, (entity, columns, ids) in enumerate(wanted):
        parts.append(
            f"(SELECT array_agg(x) FROM (SELECT {select_list(columns)} FROM {entity.table} t "
            f"WHERE t.id = ANY(CAST(:ids{index} AS uuid[]))) x)"
        )
        params[f"ids{index}"] = list(ids)
    (row,) = await db.fetch("SELECT " + ", ".join(parts), params)
    return [list(rows or ()) for rows in row]


async def pages(
    db: Db,
    entity: Entity,
    page: Page,
    columns: Sequence[str],
    parents: Sequence[str],
    *,
    after: Keyset | None,
    limit: int,
    keyed: bool = True,
) -> list[Any]:
    """The first ``limit`` rows (after ``after``) of each parent, in one statement; each
    record ends with its parent's position in ``parents``, from 1 (an integer decodes in a
    fraction of a uuid's time, and finds its group without hashing). After a cursor, each
    parent's rows are the ranges of ``Order.parts``, read in turn until the page is full: a
    deep page starts where its cursor is, in the parent's index."""
    params: dict[str, object] = {"parents": list(parents)}
    order = page.order.sql("t")
    ranges = []
    for predicate, keyset_params in page.order.parts(after, "t"):
        where = f"t.{page.parent} = k.parent_key"
        if predicate is not None:
            where += f" AND {predicate}"
        params.update(keyset_params)
        ranges.append(
            f"SELECT {select_list(columns, keyed=keyed)} FROM {entity.table} t WHERE {where} "
            f"ORDER BY {order} {limit_clause(limit)}"
        )
    # A parent's ranges in turn (UNION ALL appends them in order), as many rows as a page.
    rows = (
        ranges[0]
        if len(ranges) == 1
        else " UNION ALL ".join(f"({r})" for r in ranges) + f" {limit_clause(limit)}"
    )
    sql = f"""
    SELECT x.*, k.n FROM unnest(CAST(:parents AS uuid[])) WITH ORDINALITY AS k(parent_key, n)
    CROSS JOIN LATERAL ({rows}) x
    """
    return await db.fetch(sql, params)


async def page_counts(
    db: Db, entity: Entity, page: Page, parents: Sequence[str]
) -> dict[str, int]:
    """How many rows each parent (by ``key``) has, whatever page is read."""
    sql = (
        f"SELECT {key(f't.{page.parent}')}, count(*)::int FROM {entity.table} t "
        f"WHERE t.{page.parent} = ANY(CAST(:parents AS uuid[])) GROUP BY t.{page.parent}"
    )
    return {row[0]: row[1] for row in await db.fetch(sql, {"parents": list(parents)})}
