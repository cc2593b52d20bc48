"""Keyset predicates for lists ordered ``<column> DESC NULLS LAST, id DESC``."""

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
