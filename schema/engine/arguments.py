"""A field's arguments as strawberry gives them to a resolver, converted by a function built
once per field.

strawberry's ``convert_arguments`` resolves every input field's type annotation again on each
call: for a ``postMessage`` that was a tenth of the gateway's CPU. The converter here walks the
same strawberry types once, with the same rules (``None`` and ``UNSET`` kept, lists of leaves
copied, enums and scalars as graphql-core coerced them, input objects built with ``None`` for
their fields without a default). Any type it does not know as such (``Maybe``, ``GlobalID``, an
input with its own ``from_input``) leaves the whole field to strawberry's function.
``tests/test_engine.py`` checks both agree for every argument of the schema.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from strawberry.relay.types import GlobalID
from strawberry.schema.config import StrawberryConfig
from strawberry.types.arguments import StrawberryArgument, _is_leaf_type, convert_arguments
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import has_enum_definition
from strawberry.types.lazy_type import LazyType
from strawberry.types.unset import UNSET

Convert = Callable[[Any], Any]
Arguments = Callable[[dict[str, Any]], dict[str, Any]]


class Unknown(Exception):
    """A type this module leaves to strawberry."""


def arguments_converter(
    arguments: list[StrawberryArgument], registry: Mapping[object, Any], config: StrawberryConfig
) -> Arguments:
    """The function that converts a field's raw arguments (by GraphQL name) into its
    resolver's (by Python name), as ``convert_arguments`` does."""
    try:
        by_name = [
            (config.name_converter.from_argument(argument), argument.python_name,
             _converter(argument.type, registry, config))
            for argument in arguments
        ]
    except (Unknown, RecursionError):  # RecursionError: an input that holds itself
        return lambda raw: convert_arguments(
            raw, arguments, scalar_registry=registry, config=config
        )

    def convert(raw: dict[str, Any]) -> dict[str, Any]:
        return {python: each(raw[name]) for name, python, each in by_name if name in raw}

    return convert


def _converter(type_: Any, registry: Mapping[object, Any], config: StrawberryConfig) -> Convert:
    if isinstance(type_, StrawberryMaybe):
        raise Unknown(type_)
    if isinstance(type_, StrawberryOptional):
        return _converter(type_.of_type, registry, config)
    if isinstance(type_, LazyType):
        return _converter(type_.resolve_type(), registry, config)
    if has_enum_definition(type_):
        type_ = type_.__strawberry_definition__
    if type_ is GlobalID:
        raise Unknown(type_)
    if isinstance(type_, StrawberryList):
        item = type_.of_type
        leaf = item.of_type if isinstance(item, StrawberryOptional) else item
        if _is_leaf_type(leaf, registry, skip_classes=(GlobalID,)):
            # copied: graphql-core hands every request that omits it the same default
            return _kept(list)
        each = _converter(item, registry, config)
        return _kept(lambda values: [each(value) for value in values])
    if _is_leaf_type(type_, registry):
        return _same
    if has_object_definition(type_):
        return _input(type_, registry, config)
    raise Unknown(type_)


def _same(value: Any) -> Any:
    return value


def _kept(convert: Convert) -> Convert:
    """``convert``, with ``None`` and ``UNSET`` given back as they are."""

    def kept(value: Any) -> Any:
        return value if value is None or value is UNSET else convert(value)

    return kept


def _input(type_: Any, registry: Mapping[object, Any], config: StrawberryConfig) -> Convert:
    definition = type_.__strawberry_definition__
    if definition.from_input is not None:
        raise Unknown(type_)
    defaults = (
        {
            field.python_name: None
            for field in definition.fields
            if field.default_value is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
        }
        if definition.is_input
        else {}
    )
    fields = [
        (config.name_converter.from_field(field), field.python_name,
         _converter(field.resolve_type(type_definition=definition), registry, config))
        for field in definition.fields
    ]

    def build(value: Mapping[str, Any]) -> Any:
        kwargs = dict(defaults)
        for name, python, each in fields:
            if name in value:
                kwargs[python] = each(value[name])
        return type_(**kwargs)

    return _kept(build)
