"""The response writer of a plan, generated as Python code once per plan.

A plan's selection is known when the operation is compiled, so the code that writes a row's
object is too: for each object plan a function that reads the row's columns by position and
returns the object as one dict literal (``{"title": row[1], "createdAt": v2, …}``), calling
the writers of its relations. Nothing is interpreted per field at run time, which is most of
the cost of a response of a few thousand fields in Python. An object with no relation (a
message, a city) is one expression, written inline where it is used: in the comprehension of
its page's edges, its list or its parent's writer (no call, and no path built unless a field
is null). A page's edges are expressions too.

GraphQL's null propagation is part of the generated code: a null in a non-null field records
its error (with its path, kept as nested ``(parent, key)`` tuples that are flattened only for
an error) and raises ``Propagate``; the nearest nullable field catches it and is null. Python
3.11's ``try`` costs nothing until something is raised.

Writers take ``(row, path, F, P, R)``: the row, its path, the request's rows by type and id
(``F``), its pages by field (``P``) and the ``Run`` that records errors (``R``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from itertools import count
from types import CodeType
from typing import Any

from resolvers.ids import encode_cursor, to_global_id
from schema.engine.plan import (
    CURSOR,
    DBID,
    EDGES,
    END,
    HAS_NEXT,
    ID,
    LEAF,
    LITERAL,
    MANY,
    NODE,
    ONE,
    PAGE,
    PAGE_INFO,
    START,
    TOTAL,
    TYPENAME,
    ConnectionPlan,
    FieldPlan,
    ObjectPlan,
    PageResult,
)

Writer = Callable[..., Any]
EMPTY_PAGE = PageResult([], False, 0)


class Propagate(Exception):
    """A null reached a non-null field; its error is recorded, its parent becomes null."""


def flatten(path: Any) -> list[str | int]:
    keys: list[str | int] = []
    while path is not None:
        path, key = path
        keys.append(key)
    keys.reverse()
    return keys


@functools.lru_cache(maxsize=512)
def _compiled(source: str) -> CodeType:
    """The code of a writer's source. Plans that differ only in their arguments' values (a
    ``node`` per id, a mutation per input) generate the same source; its constants are in the
    namespace each build executes it in."""
    return compile(source, "<schema.engine.writer>", "exec")


class Generator:
    """Writes the source of every writer a plan needs, then builds them together."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {
            "Propagate": Propagate,
            "to_global_id": to_global_id,
            "encode_cursor": encode_cursor,
            "EMPTY_PAGE": EMPTY_PAGE,
        }
        self.sources: list[str] = []
        self.names: dict[int, str] = {}
        self._ids = count()
        # The global ids written by type, each memo named in the namespace: a response
        # writes an id each time a row is reached (an author per message, a reply), and a
        # lookup costs a fraction of an encoding. Cleared after each write (``Run.write_root``).
        self.memos: dict[str, str] = {}

    def constant(self, value: Any) -> str:
        name = f"k{next(self._ids)}"
        self.namespace[name] = value
        return name

    def build(self, name: str) -> Writer:
        exec(_compiled("\n\n".join(self.sources)), self.namespace)
        return self.namespace[name]  # type: ignore[no-any-return]

    # -- objects ---------------------------------------------------------------------------------

    def object(self, plan: ObjectPlan) -> str:
        """The name of the writer of ``plan``'s objects (generated on first use)."""
        name = self.names.get(id(plan))
        if name is not None:
            return name
        name = self.names[id(plan)] = f"object_{len(self.names)}"
        lines = [f"def {name}(row, path, F, P, R):"]
        if flat(plan):
            lines.append(f"    return {self.flat_object(plan, 'row', 'path')}")
            self.sources.append("\n".join(lines))
            return name
        keys = []
        for index, f in enumerate(plan.fields):
            value = f"v{index}"
            keys.append(f"{f.key!r}: {value}")
            lines += [f"    {line}" for line in self.field(f, value, plan.type_name)]
        lines.append(f"    return {{{', '.join(keys)}}}")
        self.sources.append("\n".join(lines))
        return name

    def null(self, nodes: tuple[Any, ...], here: str, field: str) -> str:
        """The call that records a null in the non-null ``field`` (``Type.name``) at ``here``
        (a path, as source), raising ``Propagate``."""
        message = f"Cannot return null for non-nullable field {field}."
        return f"R.null({self.constant(nodes)}, {here}, {message!r})"

    def null_check(self, f: FieldPlan, value: str, parent_type: str) -> list[str]:
        if not f.non_null:
            return []
        null = self.null(f.nodes, f"(path, {f.key!r})", f"{parent_type}.{f.name}")
        return [f"if {value} is None:", f"    {null}"]

    def flat_object(self, plan: ObjectPlan, row: str, path: str) -> str:
        """A flat plan's object written from ``row`` as one expression. ``path`` (the
        object's path, as source) is evaluated only for a null in a non-null field."""
        items = [f"{f.key!r}: {self.leaf(f, row, path, plan.type_name)}" for f in plan.fields]
        return "{" + ", ".join(items) + "}"

    def leaf(self, f: FieldPlan, row: str, path: str, parent_type: str) -> str:
        """A field of a flat plan as an expression (``field`` writes the same as statements)."""
        kind = f.kind
        if kind == TYPENAME or kind == LITERAL:
            return repr(f.literal)
        if kind == ID:
            return self.global_id(parent_type, f"{row}[0]")
        if kind == DBID:
            return f"str({row}[0])"
        value = f"{row}[{f.column}]"
        if f.convert is not None:
            held = self.temporary()
            value = (f"({self.constant(f.convert)}({held}) if ({held} := {value}) is not None "
                     "else None)")
        if not f.non_null:
            return value
        held = self.temporary()
        null = self.null(f.nodes, f"({path}, {f.key!r})", f"{parent_type}.{f.name}")
        return f"({held} if ({held} := {value}) is not None else {null})"

    def temporary(self) -> str:
        return f"t{next(self._ids)}"

    def global_id(self, type_name: str, key: str) -> str:
        """The global id of the ``type_name`` row whose id is ``key`` (source), encoded once
        per write and looked up after."""
        memo = self.memos.get(type_name)
        if memo is None:
            memo = self.memos[type_name] = self.constant({})
        held, written = self.temporary(), self.temporary()
        return (f"({written} if ({written} := {memo}.get({held} := {key})) is not None else "
                f"{memo}.setdefault({held}, to_global_id({type_name!r}, {held})))")

    def call(self, plan: ObjectPlan, row: str, path: str) -> str:
        """The object of ``plan`` written from ``row`` (with its path, as source): inline when
        the plan is flat, else a call of its writer."""
        if flat(plan):
            return self.flat_object(plan, row, path)
        return f"{self.object(plan)}({row}, {path}, F, P, R)"

    def field(self, f: FieldPlan, value: str, parent_type: str) -> list[str]:
        kind = f.kind
        if kind in _FLAT:
            return [f"{value} = {self.leaf(f, 'row', 'path', parent_type)}"]
        here = f"(path, {f.key!r})"
        if kind == ONE:
            lines = [f"key = row[{f.column}]"]
            if f.by is None:
                ((target, plan),) = f.targets.items() if f.targets else ((None, None),)
                if plan is None:
                    lines.append(f"{value} = None")
                    return lines + self.null_check(f, value, parent_type)
                lines += [f"child = F[{target!r}].get(key) if key is not None else None"]
                call = self.call(plan, "child", here)
            else:
                stores = self.constant(f.by_store)
                writers = {t: self.object(p) for t, p in f.targets.items()}
                dispatch = self.constant(writers)
                lines += [
                    f"target = {stores}.get(row[{f.by}]) if key is not None else None",
                    f"writer = {dispatch}.get(target)",
                    "child = F[target].get(key) if writer is not None else None",
                ]
                call = f"globals()[writer](child, {here}, F, P, R)"
            guarded = self.guarded(f, value, call, "child is None")
            return [*lines, *guarded, *self.null_check(f, value, parent_type)]
        if kind == MANY:
            ((target, plan),) = f.targets.items()
            item = self.call(plan, "c", "(items_path, i)")
            keys = self.temporary()
            written = [
                f"{value} = [{item} for i, c in enumerate("
                f"[found[k] for k in {keys} if k in found])]"
            ]
            if not f.non_null:
                # A null item propagates to the list, which is nullable; a non-null list
                # propagates on to the parent.
                written = ["try:", f"    {written[0]}", "except Propagate:", f"    {value} = None"]
            # no list built for a row that lists no key (most messages refer to no document)
            return [
                f"{keys} = row[{f.column}]",
                f"if {keys}:",
                f"    found = F[{target!r}]",
                f"    items_path = {here}",
                *(f"    {line}" for line in written),
                "else:",
                f"    {value} = []",
            ]
        assert kind == PAGE and f.connection is not None
        writer = self.connection(f.connection)
        pages = self.constant(id(f))
        call = f"{writer}(P[{pages}].get(row[0], EMPTY_PAGE), {here}, F, P, R)"
        return self.guarded(f, value, call, None) + self.null_check(f, value, parent_type)

    def guarded(self, f: FieldPlan, value: str, call: str, absent: str | None) -> list[str]:
        """``value = call`` (None when ``absent``), null when a nullable field's object
        propagates a null."""
        lines = []
        indent = ""
        if absent is not None:
            lines += [f"if {absent}:", f"    {value} = None", "else:"]
            indent = "    "
        if f.non_null:
            return [*lines, f"{indent}{value} = {call}"]
        return [
            *lines,
            f"{indent}try:",
            f"{indent}    {value} = {call}",
            f"{indent}except Propagate:",
            f"{indent}    {value} = None",
        ]

    # -- connections ---------------------------------------------------------------------------

    def connection(self, plan: ConnectionPlan) -> str:
        """The writer of ``plan``'s pages. A page of one object type is written from its
        rows (``PageResult.rows``), the conversations of both stores from their items."""
        name = self.names.get(id(plan))
        if name is not None:
            return name
        name = self.names[id(plan)] = f"connection_{len(self.names)}"
        kind = self.constant(plan.cursor_kind)
        nodes = "rows" if plan.target else "items"
        lines = [
            f"def {name}(page, path, F, P, R):",
            f"    {nodes} = page.{nodes}",
        ]
        keys = []
        for index, part in enumerate(plan.parts):
            value = f"v{index}"
            keys.append(f"{part.key!r}: {value}")
            if part.kind == TYPENAME:
                lines.append(f"    {value} = {part.literal!r}")
            elif part.kind == TOTAL:
                lines.append(f"    {value} = page.total or 0")
            elif part.kind == PAGE_INFO:
                info = []
                for sub in part.parts:
                    if sub.kind == HAS_NEXT:
                        info.append(f"{sub.key!r}: page.has_next")
                    elif sub.kind in (START, END):
                        at = f"{nodes}[{0 if sub.kind == START else -1}]"
                        cursor = self.cursor(plan, kind, at)
                        info.append(f"{sub.key!r}: {cursor} if {nodes} else None")
                    else:
                        info.append(f"{sub.key!r}: {sub.literal!r}")
                lines.append(f"    {value} = {{{', '.join(info)}}}")
            else:
                assert part.kind == EDGES
                edge = self.edge(plan, part.parts, kind, "(edges_path, i)")
                each = "row" if plan.target else "(type_name, row, first, key)"
                lines += [
                    f"    edges_path = (path, {part.key!r})",
                    f"    {value} = [{edge} for i, {each} in enumerate({nodes})]",
                ]
        lines.append(f"    return {{{', '.join(keys)}}}")
        self.sources.append("\n".join(lines))
        return name

    @staticmethod
    def cursor(plan: ConnectionPlan, kind: str, node: str | None) -> str:
        """The cursor of a page's ``node`` (source: a row of a page of one type, an item
        otherwise; None: the edge's own, unpacked)."""
        if node is None:
            if not plan.target:
                return f"encode_cursor({kind}, first, key)"
            node = "row"
        elif not plan.target:
            return f"encode_cursor({kind}, {node}[2], {node}[3])"
        column = plan.cursor_column
        first = "None" if column is None else f"{node}[{column}]"
        return f"encode_cursor({kind}, {first}, {node}[0])"

    def edge(self, plan: ConnectionPlan, parts: list[Any], kind: str, path: str) -> str:
        """An edge written from a page's row (``row``), or item (``type_name, row, first,
        key``), as one expression; ``path`` (the edge's, as source) is evaluated only for an
        error."""
        items = []
        for sub in parts:
            if sub.kind == CURSOR:
                written = self.cursor(plan, kind, None)
            elif sub.kind == NODE:
                here = f"({path}, {sub.key!r})"
                null = self.null(sub.nodes, here, f"{plan.node_type}Edge.node")
                if plan.target:
                    # rows of one type, never None: the plan of that type writes each
                    node_plan = sub.targets.get(plan.target)
                    written = null if node_plan is None else self.call(node_plan, "row", here)
                elif len(sub.targets) == 1:
                    ((target, node_plan),) = sub.targets.items()
                    written = (f"({null} if type_name != {target!r} or row is None else "
                               f"{self.call(node_plan, 'row', here)})")
                else:
                    writers = self.constant({t: self.object(p) for t, p in sub.targets.items()})
                    held = self.temporary()
                    written = (f"({null} if ({held} := {writers}.get(type_name)) is None or "
                               f"row is None else globals()[{held}](row, {here}, F, P, R))")
            else:
                written = repr(sub.literal)
            items.append(f"{sub.key!r}: {written}")
        return "{" + ", ".join(items) + "}"


def flat(plan: ObjectPlan) -> bool:
    """Whether ``plan``'s fields are all written from its own row (no relation): its object
    is then one expression, written inline where it is used."""
    return all(f.kind in _FLAT for f in plan.fields)


_FLAT = frozenset({TYPENAME, ID, DBID, LITERAL, LEAF})


def root_writers(field: FieldPlan) -> tuple[dict[str, Writer], tuple[dict[Any, str], ...]]:
    """The writers of a root field's value: of its connection (key ``""``) or of the object
    of each type it may return; and the memos of global ids they share, to clear after each
    write (a memo's entries are right for any request, but one kept would grow without
    bound)."""
    generator = Generator()
    names = (
        {"": generator.connection(field.connection)}
        if field.connection is not None
        else {t: generator.object(p) for t, p in field.targets.items()}
    )
    if not generator.sources:
        return {}, ()
    generator.build(next(iter(names.values())))
    memos = tuple(generator.namespace[name] for name in generator.memos.values())
    return {key: generator.namespace[name] for key, name in names.items()}, memos
