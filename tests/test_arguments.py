"""The engine's argument converter (``schema.engine.arguments``) gives every field's resolver
what strawberry's ``convert_arguments`` gives: every argument of every field of the schema,
with every optional value set, with each left out, and with each null."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
)
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import convert_arguments

from gateway.settings import Settings
from schema.engine.arguments import arguments_converter
from schema.root import build_schema

LEAF = object()  # a scalar's value as graphql-core coerced it: neither converter looks inside


def value(type_: GraphQLInputType, mode: str) -> Any:
    """A raw value of ``type_``: ``full`` sets every optional input field, ``bare`` leaves
    each out, ``null`` sets each to null."""
    if isinstance(type_, GraphQLNonNull):
        return value(type_.of_type, mode)
    if isinstance(type_, GraphQLList):
        return [value(type_.of_type, mode), value(type_.of_type, mode)]
    if isinstance(type_, GraphQLEnumType):
        return list(type_.values.values())[-1].value
    if isinstance(type_, GraphQLInputObjectType):
        raw = {}
        for name, field in type_.fields.items():
            required = isinstance(field.type, GraphQLNonNull)
            if required or mode == "full":
                raw[name] = value(field.type, mode)
            elif mode == "null":
                raw[name] = None
        return raw
    return LEAF


def fields_with_arguments() -> Iterator[tuple[str, Any]]:
    schema = build_schema(Settings(jwt_secret="x" * 40))
    for type_ in schema._schema.type_map.values():
        if isinstance(type_, GraphQLObjectType) and not type_.name.startswith("__"):
            for name, field in type_.fields.items():
                if field.args:
                    yield f"{type_.name}.{name}", (schema, field)


FIELDS = dict(fields_with_arguments())


def test_the_schema_has_fields_with_input_objects_lists_and_enums() -> None:
    kinds: set[type] = set()

    def walk(type_: Any) -> None:
        while isinstance(type_, (GraphQLNonNull, GraphQLList)):
            kinds.add(type(type_))
            type_ = type_.of_type
        kinds.add(type(type_))
        if isinstance(type_, GraphQLInputObjectType):
            for field in type_.fields.values():
                walk(field.type)

    for _, field in FIELDS.values():
        for arg in field.args.values():
            walk(arg.type)
    for kind in (GraphQLInputObjectType, GraphQLList, GraphQLEnumType):
        assert any(issubclass(found, kind) for found in kinds), kind
    assert "Mutation.postMessage" in FIELDS


@pytest.mark.parametrize("mode", ["full", "bare", "null"])
@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_field_converts_as_strawberry_does(name: str, mode: str) -> None:
    schema, field = FIELDS[name]
    definition = field.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
    registry = schema.schema_converter.scalar_registry
    raw = {
        arg_name: value(arg.type, mode)
        for arg_name, arg in field.args.items()
        if isinstance(arg.type, GraphQLNonNull) or mode != "bare"
    }
    expected = convert_arguments(
        raw, definition.arguments, scalar_registry=registry, config=schema.config
    )
    converted = arguments_converter(definition.arguments, registry, schema.config)(raw)
    assert converted == expected
    assert [type(v) for v in converted.values()] == [type(v) for v in expected.values()]
