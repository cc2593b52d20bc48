"""Running a compiled operation for one request: batched loads, then the response written.

Loads go breadth first. The rows of a level are gathered for each relation of their plans,
and every relation of the level asks its loader at once (``asyncio.gather``): aiodataloader
merges the keys of one entity into one statement, and a keyset page reads the first rows of
every parent in one LATERAL statement. Only the columns the operation selects of each type are
read (``OperationPlan.columns``). Then the response is written from the rows in one pass,
synchronously, by the writers generated for the plan (``schema.engine.writer``), with
GraphQL's null propagation: a null in a non-null field is an error at its path and nulls the
nearest nullable ancestor.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast
from uuid import UUID

from graphql import GraphQLError, located_error

from gateway.context import Context
from gateway.db import Db
from gateway.store import select
from gateway.store.graph import ENTITIES, Page
from loaders.rows import RowsById, read_rows
from schema.engine import roots
from schema.engine.plan import (
    EVENT,
    LISTING,
    MANY,
    MUTATION,
    NODES,
    PAGE,
    ROOT_TYPENAME,
    ROWS,
    VALUE,
    VIEWER,
    FieldPlan,
    ObjectPlan,
    OperationPlan,
    PageResult,
    RootPlan,
    ValuePlan,
    page_of,
)
from schema.engine.writer import Propagate, flatten

# The rows counted as read per store generation (``Context.reads``).
READ_TALLIES = {
    "V1Conversation": ("conversations", "v1"),
    "V2Conversation": ("conversations", "v2"),
    "V1Message": ("messages", "v1"),
    "V2Message": ("messages", "v2"),
}


class Run:
    def __init__(
        self, plan: OperationPlan, context: Context, event: tuple[str, UUID] | None = None
    ) -> None:
        self.plan = plan
        self.context = context
        # A subscription's event: the (type, id) of the row its field returns (EVENT).
        self.event = event
        self.errors: list[GraphQLError] = []
        self._rows: RowsById | None = None
        self._paged: dict[str, int] = {}  # page rows read but not remembered, by type
        self._found: defaultdict[str, dict[str, Any]] = defaultdict(dict)  # by key
        self._pages: defaultdict[int, dict[str, PageResult]] = defaultdict(dict)

    # -- rows ------------------------------------------------------------------------------------

    async def db(self) -> Db:
        return await self.context.db()

    def select(self, type_name: str) -> str:
        return select.select_list(self.plan.columns.get(type_name, []))

    def found(self, type_name: str, key: str | UUID) -> Any:
        """The row of ``type_name`` read with id ``key`` (a uuid given from outside, or a
        key as read: ``select.key``), None if not read or not visible."""
        return self._found.get(type_name, {}).get(str(key))

    def remember(self, type_name: str, rows: Iterable[Any]) -> None:
        """Rows read in the operation's layout of ``type_name``: later loads of them by id
        need no statement (a reply to a message of the same page, a repeated profile)."""
        found = self._found[type_name]
        if found:  # a row read earlier stays as it was
            found.update({row[0]: row for row in rows if row[0] not in found})
        else:
            found.update({row[0]: row for row in rows})

    @property
    def rows(self) -> RowsById:
        """The request's loader of rows by id (built on first use)."""
        if self._rows is None:
            self._rows = RowsById(self.context.db, ENTITIES, self.plan.columns, self._found)
        return self._rows

    async def load_keys(
        self, keys: Iterable[tuple[str, str | UUID]], *, alone: bool = False
    ) -> None:
        """Rows by (type, id) not read yet, one statement per type; an id given as a uuid
        (a root field's argument, an event) is found by its key's text (``select.key``)."""
        by_type: dict[str, list[str]] = {}
        for type_name, key in keys:
            by_type.setdefault(type_name, []).append(str(key))
        await self.load_ids(by_type, alone=alone)

    async def load_ids(
        self, by_type: Mapping[str, Iterable[str]], *, alone: bool = False
    ) -> None:
        """Rows by id per type, those not read yet, one statement per type. ``alone``: nothing
        else of the run can ask for rows meanwhile (the lone root field's own read), so there
        is nothing to batch with: they are read at once (``read_rows``), without the loader, its
        queue and the task that dispatches it."""
        found = self._found
        batches = []
        for type_name, ids in by_type.items():
            known = found[type_name]
            missing = tuple(k for k in dict.fromkeys(ids) if k not in known)
            if missing:
                batches.append((type_name, missing))
        if not batches:
            return
        if alone:
            await read_rows(self.context.db, ENTITIES, self.plan.columns, self._found, batches)
        elif len(batches) == 1:
            await self.rows.load(batches[0])
        else:
            await asyncio.gather(*(self.rows.load(batch) for batch in batches))

    # -- the load phase --------------------------------------------------------------------------

    async def expand(self, pairs: Iterable[tuple[ObjectPlan, Any]]) -> None:
        """Load what the plans need below these rows, a level at a time: each level sends one
        statement per object type (whichever fields reach it) and one per page field."""
        level = [(plan, row) for plan, row in pairs if plan.relations and row is not None]
        found = self._found
        while level:
            groups: dict[int, list[Any]] = {}
            plans: dict[int, ObjectPlan] = {}
            for plan, row in level:
                rows = groups.get(id(plan))
                if rows is None:
                    rows = groups[id(plan)] = []
                    plans[id(plan)] = plan
                rows.append(row)
            follows: list[tuple[FieldPlan, dict[str, list[str]]]] = []
            pages: list[tuple[FieldPlan, list[Any]]] = []
            wanted: dict[str, list[str]] = {}
            for key, rows in groups.items():
                for f in plans[key].relations:
                    if f.kind == PAGE:
                        pages.append((f, rows))
                        continue
                    keys = self.keys_of(f, rows)
                    follows.append((f, keys))
                    for type_name, ids in keys.items():
                        wanted.setdefault(type_name, []).extend(ids)
            _, *paged = await asyncio.gather(
                self.load_ids(wanted), *(self.follow_page(f, rows) for f, rows in pages)
            )
            level = []
            for f, keys in follows:
                for type_name, ids in keys.items():
                    target = f.targets.get(type_name)
                    if target is None or not target.relations:
                        continue
                    rows_of = found[type_name]
                    level.extend((target, rows_of[k]) for k in dict.fromkeys(ids) if k in rows_of)
            for next_pairs in paged:
                level.extend(cast(list[tuple[ObjectPlan, Any]], next_pairs))

    @staticmethod
    def keys_of(f: FieldPlan, rows: list[Any]) -> dict[str, list[str]]:
        """The ids, by type, of the rows a ONE or MANY field reaches from ``rows``."""
        column = f.column
        if f.kind == MANY:
            (target,) = f.targets
            return {target: [k for row in rows for k in (row[column] or ())]}
        if f.by is None:
            only = next(iter(f.targets), None)
            if only is None:
                return {}
            return {only: [k for row in rows if (k := row[column]) is not None]}
        # polymorphic (a v1 or v2 row): the type is in the row, column ``by``
        by, by_store = f.by, f.by_store
        keys: dict[str, list[str]] = {}
        for row in rows:
            key = row[column]
            type_name = by_store.get(row[by])
            if type_name is not None and key is not None:
                keys.setdefault(type_name, []).append(key)
        return keys

    async def follow_page(self, f: FieldPlan, rows: list[Any]) -> list[tuple[ObjectPlan, Any]]:
        """Read the pages of ``f`` of every row in ``rows``; returns the next level's pairs."""
        connection = f.connection
        assert connection is not None
        target = connection.target
        entity = ENTITIES[target]
        declared = ENTITIES[f.parent_type].fields[f.name]
        assert isinstance(declared, Page)
        parents = list(dict.fromkeys(row[0] for row in rows))
        db = await self.db()
        page_rows = await select.pages(
            db,
            entity,
            declared,
            self.plan.columns.get(target, []),
            parents,
            after=connection.after,
            limit=connection.read_limit,
            keyed=connection.keyed,
        )
        counts = (
            await select.page_counts(db, entity, declared, parents) if connection.counted else {}
        )
        if target in self.plan.by_id:
            self.remember(target, page_rows)
        else:  # nothing looks these rows up by id: counted for the metrics, not remembered
            self._paged[target] = self._paged.get(target, 0) + len(page_rows)
        groups: list[list[Any]] = [[] for _ in range(len(parents) + 1)]
        for row in page_rows:
            groups[row[-1]].append(row)  # the parent's position, from 1
        limit = connection.limit
        results = self._pages[id(f)]
        for parent, group in zip(parents, groups[1:], strict=True):
            results[parent] = page_of(group, limit, counts.get(parent, 0))
        plans = [p[target] for p in connection.node_plans if target in p]
        return [
            (plan, r)
            for plan in plans
            if plan.relations
            for group in groups
            for r in group[:limit]
        ]

    # -- the root --------------------------------------------------------------------------------

    def release(self) -> None:
        """Drop the request's rows and loaders. The loaders' batch functions refer back to the
        run: without this, every row of the response would wait for the cycle collector
        (hundreds of records per request, and gen-2 collections growing with them)."""
        self.tally()
        self._rows = None
        self._found.clear()
        self._paged.clear()
        self._pages.clear()

    def tally(self) -> None:
        """Count the conversations and messages read, per store (the operator's metrics)."""
        reads = self.context.reads
        for type_name, key in READ_TALLIES.items():
            rows = self._found.get(type_name)
            read = (len(rows) if rows else 0) + self._paged.get(type_name, 0)
            if read:
                reads[key] += read  # rows read, by id (never None), and page rows

    async def execute(self) -> dict[str, Any] | None:
        """The response's data (None when a non-null root field is null); ``errors`` holds
        the field errors. Each root field's own rows are read apart (one that fails is null
        with its error, its siblings answer); then everything below them, level by level."""
        plan_roots = self.plan.roots
        if len(plan_roots) == 1:  # (no task for a lone root field: most operations)
            try:
                loaded: list[Any] = [await self.load_root(plan_roots[0])]
            except Exception as error:
                loaded = [error]
        else:
            loaded = await asyncio.gather(
                *(self.load_root(root) for root in plan_roots), return_exceptions=True
            )
        below: list[tuple[ObjectPlan, Any]] = []
        for root, value in zip(plan_roots, loaded, strict=True):
            if not isinstance(value, BaseException):
                below.extend(self.below_root(root, value))
        try:
            await self.expand(below)
        except Exception as error:
            # The levels below are shared by every root field (one statement per type and
            # level): a failed load is the operation's error, located at its first field.
            first = plan_roots[0].field
            raise located_error(error, list(first.nodes), [first.key]) from None
        data: dict[str, Any] = {}
        for root, value in zip(plan_roots, loaded, strict=True):
            f = root.field
            if isinstance(value, BaseException):
                if not isinstance(value, Exception):
                    raise value
                self.errors.append(located_error(value, list(f.nodes), [f.key]))
                if f.non_null:
                    return None
                data[f.key] = None
                continue
            try:
                data[f.key] = self.write_root(root, value)
            except Propagate:
                if f.non_null:
                    return None
                data[f.key] = None
        return data

    async def execute_serially(self) -> dict[str, Any] | None:
        """A mutation's fields, one after the other: each writes, then its payload is read (as
        the viewer, with nothing remembered from an earlier field's reads)."""
        data: dict[str, Any] = {}
        for root in self.plan.roots:
            f = root.field
            if root.kind == ROOT_TYPENAME:
                data[f.key] = f.literal
                continue
            self.context.wrote = True
            self.release()
            try:
                payload, row = await roots.run_mutation(self, root)
                await self.expand([(f.targets[payload], row)])
            except Exception as error:
                self.errors.append(located_error(error, list(f.nodes), [f.key]))
                if f.non_null:
                    return None
                data[f.key] = None
                continue
            try:
                data[f.key] = self.write_root(root, (payload, row))
            except Propagate:
                return None
        return data

    async def load_root(self, root: RootPlan) -> Any:
        kind = root.kind
        if kind == LISTING:
            return await roots.fetch_listing(self, root)
        if kind == NODES:
            anonymous = self.context.is_anonymous
            wanted = [(t, k) for t, k in root.ids if not anonymous or roots.visible_to_anonymous(t)]
            await self.load_keys(wanted, alone=len(self.plan.roots) == 1)
            return [(t, self.found(t, k) if (t, k) in wanted else None) for t, k in root.ids]
        if kind == VIEWER:
            return await roots.fetch_viewer(self)
        if kind == VALUE:
            return await roots.fetch_value(self, root)
        if kind == ROWS:
            return await roots.fetch_rows(self, root)
        if kind == EVENT:
            assert self.event is not None
            await self.load_keys([self.event], alone=len(self.plan.roots) == 1)
            return [(self.event[0], self.found(*self.event))]
        return None

    @staticmethod
    def below_root(root: RootPlan, value: Any) -> list[tuple[ObjectPlan, Any]]:
        """The (plan, row) pairs of a root field's rows."""
        f = root.field
        if root.kind == LISTING:
            connection = f.connection
            assert connection is not None
            target = connection.target
            if target:
                return [
                    (targets[target], row)
                    for targets in connection.node_plans
                    if target in targets
                    for row in value.rows
                ]
            return [
                (targets[t], row)
                for targets in connection.node_plans
                for t, row, _, _ in value.items
                if t in targets
            ]
        if root.kind in (NODES, ROWS, EVENT):
            return [(f.targets[t], row) for t, row in value]
        if root.kind == VIEWER:
            return [(f.targets["Profile"], value)]
        return []

    def write_root(self, root: RootPlan, value: Any) -> Any:
        """The root field's value as written to JSON; ``Propagate`` when it is null by
        GraphQL's propagation. A value that cannot be written (an instant out of the
        driver's range) is the field's error, masked as internal, and nulls it likewise."""
        try:
            return self.write_field(root, value)
        except Propagate:
            raise
        except Exception as error:
            f = root.field
            self.errors.append(located_error(error, list(f.nodes), [f.key]))
            raise Propagate from None
        finally:
            for memo in root.memos:
                memo.clear()

    def write_field(self, root: RootPlan, value: Any) -> Any:
        f = root.field
        kind = root.kind
        path = (None, f.key)
        found, pages, writers = self._found, self._pages, root.writers
        if kind == LISTING:
            return writers[""](value, path, found, pages, self)
        if kind == NODES:
            written = []
            for index, (type_name, row) in enumerate(value):
                writer = writers.get(type_name)
                here = path if root.single else (path, index)
                try:
                    node = None if row is None or writer is None else writer(
                        row, here, found, pages, self
                    )
                except Propagate:
                    node = None  # Node is nullable, in ``node`` and in ``nodes``
                written.append(node)
            return written[0] if root.single else written
        if kind == ROWS:
            # Non-null items: one that cannot be written nulls the list (``Propagate``).
            return [
                writers[type_name](row, (path, index), found, pages, self)
                for index, (type_name, row) in enumerate(value)
            ]
        if kind == VIEWER:
            if value is None:
                return None
            try:
                return writers["Profile"](value, path, found, pages, self)
            except Propagate:
                return None
        if kind == EVENT:
            # None: the subscriber cannot read the event's row (the event is not sent).
            ((type_name, row),) = value
            return None if row is None else writers[type_name](row, path, found, pages, self)
        if kind == MUTATION:
            payload, row = value
            return writers[payload](row, path, found, pages, self)
        if kind == VALUE:
            assert root.value is not None
            return self.write_value(root.value, value, f.non_null, listed=isinstance(value, list))
        return f.literal

    def null(self, nodes: Sequence[Any], path: Any, message: str) -> None:
        """A null in a non-null field: its error, then ``Propagate`` to the nearest nullable
        parent (called by the generated writers)."""
        self.errors.append(located_error(TypeError(message), list(nodes), flatten(path)))
        raise Propagate

    # -- values computed in Python ------------------------------------------------------------

    def write_value(self, plan: ValuePlan, value: Any, non_null: bool, *, listed: bool) -> Any:
        if listed:
            return [self.write_value(plan, v, True, listed=False) for v in value]
        if value is None:
            return None
        out: dict[str, Any] = {}
        for f in plan.fields:
            if f.attribute is None:
                out[f.key] = plan.type_name
                continue
            raw = getattr(value, f.attribute)
            if f.sub is not None:
                out[f.key] = self.write_value(f.sub, raw, f.non_null, listed=f.listed)
            elif f.listed:
                out[f.key] = [f.convert(v) if f.convert else v for v in raw]
            else:
                out[f.key] = f.convert(raw) if f.convert and raw is not None else raw
        return out
