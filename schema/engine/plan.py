"""What an operation compiles to: per selection, the fields to write and where each comes from.

Plans are built once per document, operation and variable values (``schema.engine.compile``)
and shared by every request that sends them; nothing here holds a request's rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import FieldNode

# Field kinds (ints: the writer's dispatch is one comparison each).
TYPENAME, ID, DBID, LITERAL, LEAF, ONE, MANY, PAGE = range(8)
# Parts of a connection, its pageInfo and its edges.
TOTAL, PAGE_INFO, EDGES, HAS_NEXT, START, END, CURSOR, NODE = range(8, 16)

Convert = Callable[[Any], Any]


@dataclass(eq=False)
class ObjectPlan:
    """The selection on rows of one object type."""

    type_name: str
    fields: list[FieldPlan] = field(default_factory=list)
    # The fields that load rows (ONE, MANY, PAGE), for the load phase.
    relations: list[FieldPlan] = field(default_factory=list)


@dataclass(eq=False)
class FieldPlan:
    key: str  # the response key
    name: str
    kind: int
    non_null: bool
    nodes: tuple[FieldNode, ...]
    parent_type: str
    column: int = 0  # LEAF: its value; ONE: the key; MANY: the array of keys
    convert: Convert | None = None
    literal: Any = None
    # ONE and MANY: the plan of each target type; ONE with ``by``: the column naming the store
    # and the target type of each store.
    targets: dict[str, ObjectPlan] = field(default_factory=dict)
    by: int | None = None
    by_store: dict[str, str] = field(default_factory=dict)
    connection: ConnectionPlan | None = None


@dataclass(eq=False)
class Part:
    """A field of a connection, of its ``pageInfo`` or of an edge."""

    key: str
    kind: int
    literal: Any = None
    parts: list[Part] = field(default_factory=list)
    nodes: tuple[FieldNode, ...] = ()
    targets: dict[str, ObjectPlan] = field(default_factory=dict)  # NODE: a plan per type


@dataclass(eq=False)
class ConnectionPlan:
    parts: list[Part]
    # The node plans (by object type) of each ``node`` of the connection (aliases differ).
    node_plans: list[dict[str, ObjectPlan]]
    limit: int
    after: Any  # the decoded ``after`` (a keyset), None from the start
    cursor_kind: str
    cursor_column: int | None  # the column of the cursor's first part (None: the listing's)
    counted: bool  # totalCount selected
    node_type: str  # the GraphQL type of ``node`` (for errors)
    target: str = ""  # the one object type of its rows ("" for the conversations of both stores)
    peeks: bool = False  # ``hasNextPage`` selected: one row past the page says whether more follow
    keyed: bool = True  # its rows' ids are read (``mark_keyed``); else they are not selected

    @property
    def read_limit(self) -> int:
        """How many rows a page reads: the page, and the one past it when ``peeks``."""
        return self.limit + 1 if self.peeks else self.limit


@dataclass(eq=False)
class ValuePlan:
    """The selection on a value a root field computed in Python (``chatEventStats``,
    ``migrationReport``): each field read off the object by its Python name."""

    type_name: str
    fields: list[ValueField] = field(default_factory=list)


@dataclass(eq=False)
class ValueField:
    key: str
    attribute: str | None  # None: ``__typename``
    non_null: bool
    nodes: tuple[FieldNode, ...]
    name: str
    convert: Convert | None = None
    listed: bool = False
    item_non_null: bool = False
    sub: ValuePlan | None = None


# Root kinds; EVENT: a subscription's field, its row given by each event (``Run.event``).
NODES, LISTING, VIEWER, VALUE, ROOT_TYPENAME, MUTATION, ROWS, EVENT = range(8)


@dataclass(eq=False)
class RootPlan:
    field: FieldPlan  # key, name, nullability and nodes of the root field
    kind: int
    args: dict[str, Any] = dataclasses.field(default_factory=dict)
    # LISTING: its statements carry no bind parameter (no filter value, no cursor; the page
    # size is written into them), so that a generic plan of them is the custom one.
    parameterless: bool = False
    # NODES: the decoded ids and whether the field is ``node`` (one) or ``nodes`` (a list).
    ids: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    single: bool = False
    value: ValuePlan | None = None
    # The generated writers of the field's value (``schema.engine.writer.root_writers``),
    # called by ``Run.write_root`` only, one write at a time.
    writers: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Their memos of global ids (right for any request), cleared after each write.
    memos: tuple[dict[Any, str], ...] = ()


@dataclass(eq=False)
class PageResult:
    """A page as read for one request. A page of one object type (its connection's
    ``target``) holds its rows; the conversations of both stores hold ``items`` instead, each
    (object type, row — None when it could not be read —, the first part of its cursor, the
    last). Whether more follow; the total when ``totalCount`` is selected. A connection's
    writer reads the form its ``target`` says (``writer.Generator.connection``)."""

    rows: list[Any]
    has_next: bool
    total: int | None
    items: list[tuple[str, Any, Any, Any]] = field(default_factory=list)


def page_of(rows: list[Any], limit: int, total: int | None) -> PageResult:
    """The page of ``rows`` read with a connection's ``read_limit`` (a row past ``limit``
    says that more follow)."""
    return PageResult(rows[:limit], len(rows) > limit, total)


def mixed_page_of(
    items: list[tuple[str, Any, Any, Any]], limit: int, total: int | None
) -> PageResult:
    """``page_of`` the items of a page of several object types."""
    return PageResult([], len(items) > limit, total, items[:limit])


@dataclass(eq=False)
class OperationPlan:
    roots: list[RootPlan]
    # Column SQL per object type, in row order after the id (``gateway.store.select``).
    columns: dict[str, list[str]]

    # The object types whose rows the run looks up by id (``read_by_id``).
    by_id: frozenset[str] = frozenset()

    @property
    def generic_plans(self) -> bool:
        """Whether every statement the operation sends may take a generic plan
        (``gateway.db.transactions.begin_as``): each reads (or writes) rows by key, by id or
        below a parent's id, or is a root listing without parameters
        (``RootPlan.parameterless``). Statistics and listings with a filter value or a cursor
        keep the server's choice: a generic plan would not see their values."""
        return all(
            root.kind != VALUE and (root.kind != LISTING or root.parameterless)
            for root in self.roots
        )


def relations(roots: list[RootPlan]) -> list[FieldPlan]:
    """Every relation (to-one, to-many, page) below the root fields, each once."""
    found: list[FieldPlan] = []
    seen: set[int] = set()

    def below(f: FieldPlan) -> list[ObjectPlan]:
        """The plans of the objects ``f`` reaches: its targets, or its connection's nodes."""
        nodes = f.connection.node_plans if f.connection is not None else []
        return [*f.targets.values(), *(p for plans in nodes for p in plans.values())]

    def walk(plan: ObjectPlan) -> None:
        if id(plan) in seen:
            return
        seen.add(id(plan))
        for f in plan.relations:
            found.append(f)
            for target in below(f):
                walk(target)

    for root in roots:
        for target in below(root.field):
            walk(target)
    return found


def read_by_id(roots: list[RootPlan], below: list[FieldPlan]) -> frozenset[str]:
    """The object types whose rows a run looks up by id: the targets of to-one and to-many
    fields (``below``: the roots' ``relations``) and of the root fields that are not
    listings. The rows of a page of any other type are only written and counted, never
    remembered by id (``Run.follow_page``)."""
    types = {t for root in roots for t in root.field.targets}
    types.update(t for f in below if f.kind in (ONE, MANY) for t in f.targets)
    return frozenset(types)


def mark_keyed(below: list[FieldPlan], by_id: frozenset[str]) -> None:
    """Say of each page among ``below`` (the roots' ``relations``) whether its rows' ids are
    read (``keyed``): written as ``id`` or ``databaseId``, the parents of pages below, a
    cursor's last part, or the keys of rows looked up by id. A page whose ids nobody reads is
    read without them."""
    for f in below:
        connection = f.connection
        if f.kind != PAGE or connection is None:
            continue
        connection.keyed = (
            connection.target in by_id
            or connection.cursor_column is not None
            or any(
                x.kind in (ID, DBID, PAGE)
                for plans in connection.node_plans
                for plan in plans.values()
                for x in plan.fields
            )
        )

