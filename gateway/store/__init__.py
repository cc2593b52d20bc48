"""All SQL of the gateway. Functions take the request's ``Db`` first, never commit, and
return row mappings (``Row``) keyed by column name."""

from collections.abc import Mapping
from typing import Any

Row = Mapping[str, Any]
# A row straight from the driver (``Db.fetch``): reads by column name and by position.
Record = Any


def where_clause(conditions: list[str]) -> str:
    """``WHERE`` with ``conditions`` joined by ``AND``; "" for none."""
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""
