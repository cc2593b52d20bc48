"""Keyset predicates for lists ordered by an instant that may be NULL, then by id: newest
first (``DESC NULLS LAST``) or oldest first (``ASC``, where NULLs also sort last)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

Keyset = tuple[datetime | None, UUID]


def newest_first_after(after: Keyset, column: str, id_column: str) -> tuple[str, dict[str, object]]:
    """The rows strictly after ``after`` in ``column DESC NULLS LAST, id_column DESC`` order."""
    at, row_id = after
    if at is None:
        return f"({column} IS NULL AND {id_column} < :after_id)", {"after_id": row_id}
    return (
        f"({column} < :after_at OR ({column} = :after_at AND {id_column} < :after_id)"
        f" OR {column} IS NULL)",
        {"after_at": at, "after_id": row_id},
    )


def oldest_first_after(after: Keyset, column: str, id_column: str) -> tuple[str, dict[str, object]]:
    """The rows strictly after ``after`` in ``column, id_column`` order (ascending: the rows
    without an instant come last, by id). The row comparison keeps the index's range scan."""
    at, row_id = after
    if at is None:
        return (
            f"({column} IS NULL AND {id_column} > CAST(:after_id AS uuid))",
            {"after_id": row_id},
        )
    return (
        f"(({column}, {id_column}) > (CAST(:after_at AS timestamptz), CAST(:after_id AS uuid))"
        f" OR {column} IS NULL)",
        {"after_at": at, "after_id": row_id},
    )
