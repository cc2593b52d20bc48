"""``Query.chatEvents``' filter and ``Query.chatEventStats``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateway.context import Context
from gateway.store import analytics as store
from resolvers.arguments import aware
from resolvers.ids import expect_id


def to_store_filter(f: Any) -> store.EventFilter:
    """The ``ChatEventFilter`` input (ids decoded, instants checked) as the store's."""
    if f is None:
        return store.EventFilter()
    return store.EventFilter(
        source=getattr(f.source, "value", None),
        start=aware(f.from_, "from"),
        end=aware(f.to, "to"),
        user_id=expect_id(f.user_id, "Profile", argument="userId")[1] if f.user_id else None,
        document_id=(
            expect_id(f.document_id, "Document", argument="documentId")[1]
            if f.document_id
            else None
        ),
        model_name=f.model_name,
    )


@dataclass(frozen=True)
class Bucket:
    """A ``ChatEventBucket``: ``source`` as stored (``'v1'``/``'v2'``), NULL where not
    grouped by."""

    source: str | None
    day: dt.date | None
    model_name: str | None
    events: int
    tokens_total: int
    cost_total: Decimal


async def chat_event_stats(
    context: Context, criteria: store.EventFilter, groups: list[str]
) -> list[Bucket]:
    if context.is_anonymous:
        return []
    rows = await store.stats(await context.db(), criteria, groups)
    return [
        Bucket(
            source=r["source"],
            day=r["day"],
            model_name=r["model"],
            events=r["events"],
            tokens_total=int(r["tokens_total"]),
            cost_total=r["cost_total"],
        )
        for r in rows
    ]
