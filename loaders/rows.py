"""RowsById: rows by id, of every object type, with the columns an operation selects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence

from aiodataloader import DataLoader

from gateway.db import Db
from gateway.store import Record, select
from gateway.store.graph import Entity

# A type with at most this many ids to read shares a statement with the other such types of
# the same step (records in arrays, ``select.by_ids_together``); more, and its own statement
# of plain rows costs less (measured: the array form costs about 0.8 µs more per row in the
# gateway and 0.6 µs more in PostgreSQL, a statement about 50 µs in each, and a round trip).
# At 64, R2's last two levels are two statements instead of five (profiles of 50 rows, zones
# and cities of 40 each); its gateway CPU fell ~6% in-process (6 alternations), PostgreSQL's
# did not move measurably.
SHARED_READ_ROWS = 64


class RowsById(DataLoader[tuple[str, tuple[str, ...]], None]):
    """A key is (object type, a batch of ids): the ids of that type one step of the engine
    needs, as read (``select.key``). The batches asked for in the same tick are read
    together (``read_rows``). A batch is one future, not one per id (a response of a thousand
    rows would otherwise schedule a thousand)."""

    def __init__(
        self,
        db: Callable[[], Awaitable[Db]],
        entities: Mapping[str, Entity],
        columns: Mapping[str, Sequence[str]],
        found: Mapping[str, MutableMapping[str, Record]],
    ) -> None:
        # no cache: ``found`` is the request's cache, by id
        super().__init__(max_batch_size=None, cache=False)
        self.db = db
        self.entities = entities
        self.columns = columns
        self.found = found

    async def batch_load_fn(self, batches: Sequence[tuple[str, tuple[str, ...]]]) -> list[None]:
        await read_rows(self.db, self.entities, self.columns, self.found, batches)
        return [None] * len(batches)


async def read_rows(
    db: Callable[[], Awaitable[Db]],
    entities: Mapping[str, Entity],
    columns: Mapping[str, Sequence[str]],
    found: Mapping[str, MutableMapping[str, Record]],
    batches: Sequence[tuple[str, Sequence[str]]],
) -> None:
    """The rows of ``batches`` (object type, ids) not in ``found`` yet, with the ``columns``
    of their type: one statement per type, except that the small ones share one. The rows
    land in ``found`` (the request's rows, by type and id); an id not visible to the viewer
    (or gone) stays absent. Called without a loader when nothing else can ask meanwhile
    (``Run.load_ids``: a DataLoader costs more to build than such a read's own work)."""
    wanted: dict[str, dict[str, None]] = {}
    for type_name, ids in batches:
        known = found[type_name]
        missing = wanted.setdefault(type_name, {})
        for key in ids:
            if key not in known:
                missing[key] = None
    small = [t for t, ids in wanted.items() if 0 < len(ids) <= SHARED_READ_ROWS]
    alone = [t for t, ids in wanted.items() if len(ids) > SHARED_READ_ROWS]
    if len(small) == 1:
        alone, small = small + alone, []
    conn = await db()
    if small:
        read = await select.by_ids_together(
            conn, [(entities[t], columns.get(t, ()), list(wanted[t])) for t in small]
        )
        for type_name, rows in zip(small, read, strict=True):
            keep(found[type_name], rows)
    for type_name in alone:
        keep(found[type_name], await select.by_ids(
            conn, entities[type_name], columns.get(type_name, ()), list(wanted[type_name]),
        ))


def keep(found: MutableMapping[str, Record], rows: Sequence[Record]) -> None:
    for row in rows:
        found[row[0]] = row
