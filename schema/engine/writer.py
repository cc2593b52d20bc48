"""The response writer of a plan, generated as Python code once per plan.

A plan's selection is known when the operation is compiled, so the code that writes a row's
object is too: for each object plan a function that reads the row's columns by position and
returns the object as one dict literal (``{"title": row[1], "createdAt": v2, …}``), calling
the writers of its relations. Nothing is interpreted per field at run time, which is most of
the cost of a response of a few thousand fields in Python.

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
        keys = []
        for index, f in enumerate(plan.fields):
            value = f"v{index}"
            keys.append(f"{f.key!r}: {value}")
            lines += [f"    {line}" for line in self.field(f, value, plan.type_name)]
        lines.append(f"    return {{{', '.join(keys)}}}")
        self.sources.append("\n".join(lines))
        return name

    def null_check(self, f: FieldPlan, value: str, parent_type: str) -> list[str]:
        if not f.non_null:
            return []
        message = f"Cannot return null for non-nullable field {parent_type}.{f.name}."
        return [
            f"if {value} is None:",
            f"    R.null({self.constant(f.nodes)}, (path, {f.key!r}), {message!r})",
        ]

    def field(self, f: FieldPlan, value: str, parent_type: str) -> list[str]:
        kind = f.kind
        if kind == TYPENAME or kind == LITERAL:
            return [f"{value} = {f.literal!r}"]
        if kind == ID:
            return [f"{value} = to_global_id({parent_type!r}, row[0])"]
        if kind == DBID:
            return [f"{value} = str(row[0])"]
        if kind == LEAF:
            lines = [f"{value} = row[{f.column}]"]
            if f.convert is not None:
                convert = self.constant(f.convert)
                lines += [f"if {value} is not None:", f"    {value} = {convert}({value})"]
            return [*lines, *self.null_check(f, value, parent_type)]
        here = f"(path, {f.key!r})"
        if kind == ONE:
            lines = [f"key = row[{f.column}]"]
            if f.by is None:
                ((target, plan),) = f.targets.items() if f.targets else ((None, None),)
                if plan is None:
                    lines.append(f"{value} = None")
                    return lines + self.null_check(f, value, parent_type)
                writer = self.object(plan)
                lines += [f"child = F[{target!r}].get(key) if key is not None else None"]
                call = f"{writer}(child, {here}, F, P, R)"
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
            writer = self.object(plan)
            lines = [
                f"found = F[{target!r}]",
                "children = [found[k] for k in (row[" + str(f.column) + "] or ()) if k in found]",
                f"items_path = {here}",
            ]
            if f.non_null:
                # A null item propagates to the list, which is non-null too: to the parent.
                lines.append(
                    f"{value} = [{writer}(c, (items_path, i), F, P, R)"
                    " for i, c in enumerate(children)]"
                )
                return lines
            return [
                *lines,
                "try:",
                f"    {value} = [{writer}(c, (items_path, i), F, P, R)"
                " for i, c in enumerate(children)]",
                "except Propagate:",
                f"    {value} = None",
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
        name = self.names.get(id(plan))
        if name is not None:
            return name
        name = self.names[id(plan)] = f"connection_{len(self.names)}"
        kind = self.constant(plan.cursor_kind)
        lines = [
            f"def {name}(page, path, F, P, R):",
            "    items = page.items",
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
                        at = "0" if sub.kind == START else "-1"
                        info.append(
                            f"{sub.key!r}: encode_cursor({kind}, items[{at}][2], "
                            f"items[{at}][3]) if items else None"
                        )
                    else:
                        info.append(f"{sub.key!r}: {sub.literal!r}")
                lines.append(f"    {value} = {{{', '.join(info)}}}")
            else:
                assert part.kind == EDGES
                edge = self.edge(plan, part.parts, kind)
                lines += [
                    f"    edges_path = (path, {part.key!r})",
                    f"    {value} = [{edge}(item, (edges_path, i), F, P, R)"
                    " for i, item in enumerate(items)]",
                ]
        lines.append(f"    return {{{', '.join(keys)}}}")
        self.sources.append("\n".join(lines))
        return name

    def edge(self, plan: ConnectionPlan, parts: list[Any], kind: str) -> str:
        name = f"edge_{next(self._ids)}"
        lines = [f"def {name}(item, path, F, P, R):", "    type_name, row, first, key = item"]
        keys = []
        for index, sub in enumerate(parts):
            value = f"v{index}"
            keys.append(f"{sub.key!r}: {value}")
            if sub.kind == CURSOR:
                lines.append(f"    {value} = encode_cursor({kind}, first, key)")
            elif sub.kind == NODE:
                message = (
                    f"Cannot return null for non-nullable field {plan.node_type}Edge.node."
                )
                if len(sub.targets) == 1:
                    # one type of node (a page of messages): its writer, called by name
                    ((target, node_plan),) = sub.targets.items()
                    lines.append(
                        f"    {value} = (None if type_name != {target!r} or row is None else "
                        f"{self.object(node_plan)}(row, (path, {sub.key!r}), F, P, R))"
                    )
                else:
                    writers = self.constant({t: self.object(p) for t, p in sub.targets.items()})
                    lines += [
                        f"    writer = {writers}.get(type_name)",
                        f"    {value} = (None if writer is None or row is None else "
                        f"globals()[writer](row, (path, {sub.key!r}), F, P, R))",
                    ]
                lines += [
                    f"    if {value} is None:",
                    f"        R.null({self.constant(sub.nodes)}, (path, {sub.key!r}), "
                    f"{message!r})",
                ]
            else:
                lines.append(f"    {value} = {sub.literal!r}")
        lines.append(f"    return {{{', '.join(keys)}}}")
        self.sources.append("\n".join(lines))
        return name


def root_writers(field: FieldPlan) -> dict[str, Writer]:
    """The writers of a root field's value: of its connection (key ``""``) or of the object
    of each type it may return."""
    generator = Generator()
    names = (
        {"": generator.connection(field.connection)}
        if field.connection is not None
        else {t: generator.object(p) for t, p in field.targets.items()}
    )
    if not generator.sources:
        return {}
    generator.build(next(iter(names.values())))
    return {key: generator.namespace[name] for key, name in names.items()}
