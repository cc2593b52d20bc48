"""A faster graphql-core execution path for the graph's hot shapes.

Most fields of a response are leaves that strawberry resolves with its default resolver, a
plain ``getattr`` (``title``, ``text``, ``createdAt``, …). graphql-core executes each of them
the general way: a ``Path``, a resolve info (a 16-field tuple), strawberry's resolver wrapper,
up to three awaitable checks and a recursive ``complete_value``; about 5 µs a field, most of
the CPU of a large response. ``FastExecutionContext`` reads such a field straight off its
object and serialises it, and builds the path only when the field fails. An object field
read the same way (``Edge.node``) goes straight to its sub-fields, once its object type is
known for the object's class. Everything else (fields with resolvers or arguments, lists,
``__typename``, awaitable or exception values, objects cast with ``strawberry.cast``) takes
graphql-core's path unchanged, so errors, nulls and their propagation are the same on both
paths.

Which object type a class resolves to (behind an interface, or checked by ``is_type_of``) is
worked out once per request with strawberry's own functions, then remembered: strawberry's
type resolution builds the list of possible types for every object it checks.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from graphql import (
    GraphQLAbstractType,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    Undefined,
    is_interface_type,
    is_leaf_type,
    is_non_null_type,
    is_object_type,
    located_error,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import invalid_return_type_error, to_nodes
from graphql.pyutils import AwaitableOrValue, Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.cast import get_strawberry_type_cast
from strawberry.types.field import StrawberryField

from schema.engine.compile import CompileError, Unsupported, compile_operation
from schema.engine.run import Run

# strawberry's own type resolution for interfaces (``from_interface``): it depends only on the
# object's class unless the object was cast with ``strawberry.cast``.
INTERFACE_RESOLVE_TYPE = (
    "GraphQLCoreConverter.from_interface.<locals>._get_resolve_type.<locals>.resolve_type"
)
# Likewise strawberry's ``is_type_of`` for object types that implement interfaces.
OBJECT_IS_TYPE_OF = "GraphQLCoreConverter.from_object.<locals>._get_is_type_of.<locals>.is_type_of"


def _qualname(function: Any) -> str | None:
    return getattr(getattr(function, "__code__", None), "co_qualname", None)


class PlainLeaf(NamedTuple):
    """A leaf field strawberry resolves with ``getattr(source, attribute)``."""

    attribute: str
    type: GraphQLLeafType
    non_null: bool
    field_name: str


class PlainObject(NamedTuple):
    """An object or interface field strawberry resolves with ``getattr(source, attribute)``."""

    attribute: str
    field_def: GraphQLField
    type: GraphQLObjectType | GraphQLInterfaceType
    non_null: bool
    field_name: str


class Step(NamedTuple):
    response_name: str
    field_details_list: FieldDetailsList
    leaf: PlainLeaf | None
    object: PlainObject | None


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Resolver middleware (a strawberry extension with ``resolve``) must see every field.
        manager = self.middleware_manager
        self.fast = manager is None or not manager.middlewares
        # Keyed by id() of the grouped field set (graphql-core memoises those per request);
        # the value keeps the set alive so that its id cannot be reused meanwhile.
        self.plans: dict[tuple[str, int], tuple[GroupedFieldSet, list[Step]]] = {}
        self.runtime_types: dict[tuple[str, type], GraphQLObjectType] = {}
        self.checked_types: dict[tuple[str, type], GraphQLObjectType] = {}

    def plan(self, parent_type: GraphQLObjectType, fields: GroupedFieldSet) -> list[Step]:
        key = (parent_type.name, id(fields))
        cached = self.plans.get(key)
        if cached is not None:
            return cached[1]
        steps = []
        for name, details in fields.items():
            leaf = plain = None
            if self.fast:
                leaf, plain = self.plain_field(parent_type, details)
            steps.append(Step(name, details, leaf, plain))
        self.plans[key] = (fields, steps)
        return steps

    def plain_field(
        self, parent_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> tuple[PlainLeaf | None, PlainObject | None]:
        node = field_details_list[0].node
        field_def = self.schema.get_field(parent_type, node.name.value)
        if field_def is None or field_def.args or node.arguments:
            return None, None
        resolve = field_def.resolve
        field = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        # strawberry's resolver for a field without resolver, extensions or exception
        # handlers: ``field.default_resolver(source, field.python_name)``.
        if (
            getattr(resolve, "__name__", None) != "_get_basic_result"
            or not isinstance(field, StrawberryField)
            or not field.is_basic_field
            or field.default_resolver is not getattr
        ):
            return None, None
        return_type = field_def.type
        non_null = is_non_null_type(return_type)
        named = return_type.of_type if non_null else return_type  # type: ignore[union-attr]
        name = node.name.value
        if is_leaf_type(named):
            return PlainLeaf(field.python_name, named, non_null, name), None
        if (is_object_type(named) and _known_is_type_of(named)) or (
            is_interface_type(named) and _qualname(named.resolve_type) == INTERFACE_RESOLVE_TYPE
        ):
            return None, PlainObject(field.python_name, field_def, named, non_null, name)
        return None, None

    def object_type_of(
        self,
        plain: PlainObject,
        value: Any,
        parent_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> GraphQLObjectType:
        """The object type ``value`` completes as, checked as ``complete_value`` checks it
        (the first time for its class)."""
        key = (plain.type.name, type(value))
        known = self.checked_types.get(key)
        cast = get_strawberry_type_cast(value)
        if known is not None and cast is None:
            return known
        info = self.build_resolve_info(
            plain.field_def, to_nodes(field_details_list), parent_type, path
        )
        if is_interface_type(plain.type):
            object_type = self.ensure_valid_runtime_type(
                plain.type.resolve_type(value, info, plain.type),  # type: ignore[misc]
                plain.type,
                field_details_list,
                info,
                value,
            )
            if not _known_is_type_of(object_type):
                raise _Unplanned
        else:
            object_type = plain.type  # type: ignore[assignment]
        if object_type.is_type_of and not object_type.is_type_of(value, info):
            raise invalid_return_type_error(object_type, value, field_details_list)
        if cast is None:
            self.checked_types[key] = object_type
        return object_type

    def complete_plain_object(
        self,
        plain: PlainObject,
        value: Any,
        parent_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        """``complete_value`` of a non-null ``value`` of an object or interface type."""
        object_type = self.object_type_of(plain, value, parent_type, field_details_list, path)
        completed = self.collect_and_execute_subfields(
            object_type, field_details_list, path, value, position_context
        )
        if not self.is_awaitable(completed):
            return completed

        async def await_completed() -> Any:
            # As graphql-core's ``execute_field`` does for an awaitable completion.
            try:
                return await completed
            except Exception as raw_error:
                self.handle_field_error(
                    raw_error, plain.field_def.type, field_details_list, path
                )
                return None

        return await_completed()

    def execute_root_grouped_field_set(
        self,
        root_type: GraphQLObjectType,
        root_value: Any,
        grouped_field_set: GroupedFieldSet,
        serially: bool,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        """Every query and mutation runs through the engine (``schema.engine``); what it does
        not execute (introspection, ``@defer``) through graphql-core's executor."""
        try:
            plan = compile_operation(
                self.schema,
                self.fragments,
                self.variable_values,
                self.operation,
                root_type,
                grouped_field_set,
            )
        except Unsupported:
            return super().execute_root_grouped_field_set(
                root_type, root_value, grouped_field_set, serially, position_context
            )
        except CompileError as refused:
            # Refused before any SQL: no root field runs.
            self.collected_errors.errors.append(
                located_error(refused.error, list(refused.nodes), refused.path)
            )
            return refused_data(root_type, grouped_field_set)  # type: ignore[return-value]
        run = Run(plan, self.context_value)

        async def execute() -> Any:
            try:
                data = await (run.execute_serially() if serially else run.execute())
            finally:
                run.release()
            self.collected_errors.errors.extend(run.errors)
            return data

        return execute()

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        """graphql-core's ``execute_fields`` with plain leaves completed inline."""
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list, leaf, plain in self.plan(
                parent_type, grouped_field_set
            ):
                if plain is not None:
                    field_path = Path(path, response_name, parent_type.name)
                    try:
                        value = read_attribute(source_value, plain, parent_type)
                        if value is None:
                            results[response_name] = None
                            continue
                        if not isinstance(value, Exception) and not is_awaitable(value):
                            completed = self.complete_plain_object(
                                plain,
                                value,
                                parent_type,
                                field_details_list,
                                field_path,
                                position_context,
                            )
                            results[response_name] = completed
                            if is_awaitable(completed):
                                awaitable_fields.append(response_name)
                            continue
                    except _Unplanned:
                        pass  # the general path below
                    except Exception as raw_error:
                        self.handle_field_error(
                            raw_error, plain.field_def.type, field_details_list, field_path
                        )
                        results[response_name] = None
                        continue
                elif leaf is not None:
                    try:
                        value = read_attribute(source_value, leaf, parent_type)
                        if value is None:
                            results[response_name] = None
                            continue
                        if not isinstance(value, Exception) and not is_awaitable(value):
                            results[response_name] = self.complete_leaf_value(leaf.type, value)
                            continue
                        # Left to the general path below (reading an attribute twice is
                        # harmless).
                    except Exception as raw_error:
                        self.handle_field_error(
                            raw_error,
                            self.schema.get_field(parent_type, leaf.field_name).type,  # type: ignore[union-attr]
                            field_details_list,
                            Path(path, response_name, parent_type.name),
                        )
                        results[response_name] = None
                        continue
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_details_list,
                    Path(path, response_name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                # As graphql-core does: settle the awaitables of the other fields.
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise

        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited = await gather_with_cancel(*(results[f] for f in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()

    def complete_abstract_value(
        self,
        return_type: GraphQLAbstractType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        resolve_type = return_type.resolve_type
        cacheable = (
            getattr(getattr(resolve_type, "__code__", None), "co_qualname", None)
            == INTERFACE_RESOLVE_TYPE
            and get_strawberry_type_cast(result) is None
        )
        if not cacheable:
            return super().complete_abstract_value(
                return_type, field_details_list, info, path, result, position_context
            )
        key = (return_type.name, type(result))
        runtime_type = self.runtime_types.get(key)
        if runtime_type is None:
            runtime_type = self.ensure_valid_runtime_type(
                resolve_type(result, info, return_type),  # type: ignore[misc]
                return_type,
                field_details_list,
                info,
                result,
            )
            self.runtime_types[key] = runtime_type
        return self.complete_object_value(
            runtime_type, field_details_list, info, path, result, position_context
        )


class _Unplanned(Exception):
    """An object type whose ``is_type_of`` is not strawberry's: left to the general path."""


def _known_is_type_of(object_type: GraphQLObjectType) -> bool:
    """Whether ``object_type`` has no ``is_type_of`` or strawberry's class-based one."""
    return object_type.is_type_of is None or _qualname(object_type.is_type_of) == OBJECT_IS_TYPE_OF


def read_attribute(
    source: Any, spec: PlainLeaf | PlainObject, parent_type: GraphQLObjectType
) -> Any:
    """The field's value read off ``source`` (None for null); null in a non-null field raises
    graphql-core's error, as the general path would."""
    value = getattr(source, spec.attribute)
    if value is None or value is Undefined:
        if spec.non_null:
            raise TypeError(
                f"Cannot return null for non-nullable field {parent_type}.{spec.field_name}."
            )
        return None
    return value


def refused_data(root_type: GraphQLObjectType, fields: GroupedFieldSet) -> dict[str, Any] | None:
    """The data of a request refused when compiled: every root field null (none ran), or no
    data at all when one of them cannot be null."""
    data: dict[str, Any] = {}
    for key, details in fields.items():
        field_def = root_type.fields.get(details[0].node.name.value)
        if field_def is not None and is_non_null_type(field_def.type):
            return None
        data[key] = None
    return data


class ResolverExecutionContext(FastExecutionContext):
    """Every operation through the resolvers (``build_schema(reference=True)``)."""

    def execute_root_grouped_field_set(
        self,
        root_type: GraphQLObjectType,
        root_value: Any,
        grouped_field_set: GroupedFieldSet,
        serially: bool,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        return self.execute_fields_serially(
            root_type, root_value, None, grouped_field_set, position_context
        ) if serially else self.execute_fields(
            root_type, root_value, None, grouped_field_set, position_context
        )
