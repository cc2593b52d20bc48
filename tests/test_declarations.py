"""Every field of the graph is declared once, where the engine reads it from."""

from __future__ import annotations

import dataclasses

from graphql import GraphQLObjectType
from strawberry.schema.schema_converter import GraphQLCoreConverter

from gateway.store import verify
from gateway.store.graph import DECLARATIONS, ENTITIES, PAYLOADS, Page, ToMany, ToOne
from resolvers.analytics import Bucket
from resolvers.migrations import Report, StatusCount
from schema import build_schema
from schema.engine.roots import MUTATIONS, ROOT_FIELDS

SCHEMA = build_schema()._schema
# The same for every type: the key, its global id, the store of a V1/V2 type, the type name.
GENERIC = {"id", "databaseId"}


def object_types() -> dict[str, GraphQLObjectType]:
    return {
        name: t
        for name, t in SCHEMA.type_map.items()
        if isinstance(t, GraphQLObjectType) and not name.startswith("__")
    }


def test_every_field_of_an_object_type_has_a_declaration() -> None:
    missing = []
    for name, entity in DECLARATIONS.items():
        for field in object_types()[name].fields:
            generic = field in GENERIC or (field == "source" and entity.source is not None)
            if not generic and field not in entity.fields:
                missing.append(f"{name}.{field}")
    assert missing == []


def test_declarations_name_only_fields_of_the_graph() -> None:
    stray = [
        f"{name}.{field}"
        for name, entity in DECLARATIONS.items()
        for field in entity.fields
        if field not in object_types()[name].fields
    ]
    assert stray == []


def test_every_node_and_payload_type_is_declared() -> None:
    nodes = {n for n, t in object_types().items() if "id" in t.fields}
    payloads = {n for n in object_types() if n.endswith("Payload")}
    assert nodes <= set(ENTITIES)
    assert payloads == set(PAYLOADS)
    # an entity that is not a Node (``FeatureValue``) is reached through a relation
    targets = {
        t
        for entity in DECLARATIONS.values()
        for f in entity.fields.values()
        if isinstance(f, (ToOne, ToMany, Page))
        for t in ([f.target] if isinstance(f.target, str) else f.target.values())
    }
    assert set(ENTITIES) - nodes <= targets


def test_every_root_field_and_mutation_has_a_plan() -> None:
    assert set(object_types()["Query"].fields) == ROOT_FIELDS
    assert set(object_types()["Mutation"].fields) == set(MUTATIONS)


def test_computed_values_have_every_field_the_graph_reads() -> None:
    """``chatEventStats`` and ``migrationReport`` are written from plain data, field by field
    (its Python name): the data must have each."""
    data = {
        "ChatEventBucket": Bucket,
        "MigrationReport": Report,
        "MigrationStatusCount": StatusCount,
        "MigrationProblem": verify.Problem,
    }
    missing = []
    for name, cls in data.items():
        attributes = {f.name for f in dataclasses.fields(cls)} | {
            a for a in dir(cls) if isinstance(getattr(cls, a, None), property)
        }
        for field_name, field in object_types()[name].fields.items():
            python = field.extensions[GraphQLCoreConverter.DEFINITION_BACKREF].python_name
            if python not in attributes:
                missing.append(f"{name}.{field_name}")
    assert missing == []
