"""Keyset predicates for lists ordered by an instant that may be NULL, then by id: newest
first (``DESC NULLS LAST``) or oldest first (``ASC``, where NULLs also sort last)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from gateway.db import Db
from gateway.store import Record, where_clause

Keyset = tuple[datetime | None, UUID]


def limit_clause(limit: int) -> str:
    """A page's ``LIMIT``, written into its statement (a page size is one of a hundred
    values): a listing without other parameters then plans alike generic or custom
    (``schema.engine.plan.OperationPlan.generic_plans``), and a page below it plans for its
    size. A parameter's generic plan guessed a tenth of the table (R1's listing: a hash join
    over every conversation)."""
    return f"LIMIT {int(limit)}"


def newest_first_order(column: str, id_column: str) -> str:
    """The newest-first order (``ORDER BY``'s terms): the instant descending, the rows without
    one last, then the id descending. ``keyset_parts`` reads the rows after a cursor in it."""
    return f"{column} DESC NULLS LAST, {id_column} DESC"


def keyset_parts(
    after: Keyset | None, column: str, id_column: str, *, newest_first: bool
) -> list[tuple[str | None, dict[str, object]]]:
    """The rows after ``after``, in ``column DESC NULLS LAST, id_column DESC`` order
    (``newest_first``) or ``column, id_column`` (ascending, NULLs last too), as parts read one
    after the other, each a range of the index in that order at any depth: the rows with an
    instant beyond the cursor's (a row comparison), then those without one. One predicate
    with ``OR column IS NULL`` is no index condition: a page that deep read every row before
    it. A cursor on a row without an instant is one part: the rows without one beyond its id."""
    if after is None:
        return [(None, {})]
    at, row_id = after
    beyond = "<" if newest_first else ">"
    if at is None:
        return [
            (
                f"({column} IS NULL AND {id_column} {beyond} CAST(:after_id AS uuid))",
                {"after_id": row_id},
            )
        ]
    return [
        (
            f"({column}, {id_column}) {beyond} "
            "(CAST(:after_at AS timestamptz), CAST(:after_id AS uuid))",
            {"after_at": at, "after_id": row_id},
        ),
        (f"{column} IS NULL", {}),
    ]


def newest_first_clauses(
    where: list[str], after: Keyset | None, column: str, id_column: str
) -> tuple[list[str], dict[str, object]]:
    """The ``WHERE`` clause ("" for none) of each newest-first part of ``keyset_parts``: ``where``
    and the part's range, and the parameters of them all. A listing of several stores reads
    each store's parts in one statement, as sub-selects joined by ``UNION ALL`` under the
    listing's order and limit: every part a range of the index, at any depth."""
    clauses: list[str] = []
    params: dict[str, object] = {}
    for predicate, part_params in keyset_parts(after, column, id_column, newest_first=True):
        conditions = where if predicate is None else [*where, predicate]
        clauses.append(where_clause(conditions))
        params.update(part_params)
    return clauses, params


async def newest_first_page(
    db: Db,
    source: str,
    where: list[str],
    params: dict[str, object],
    after: Keyset | None,
    limit: int,
    column: str = "t.created_at",
    id_column: str = "t.id",
) -> list[Record]:
    """Up to ``limit`` rows of ``source`` (``SELECT … FROM table t``) matching ``where``, after
    ``after`` in ``column DESC NULLS LAST, id_column DESC`` order: a statement for each part
    of ``keyset_parts``, the next only when a page is not full (the rows without an
    instant come last)."""
    order = f"ORDER BY {newest_first_order(column, id_column)}"
    clauses, keyset_params = newest_first_clauses(where, after, column, id_column)
    rows: list[Record] = []
    for clause in clauses:
        # the same text for every page (the driver prepares each text once): the second
        # part's surplus rows, if any, are dropped here
        found = await db.fetch(f"{source} {clause} {order} {limit_clause(limit)}",
                               {**params, **keyset_params})
        rows += found[: limit - len(rows)]
        if len(rows) >= limit:
            break
    return rows
