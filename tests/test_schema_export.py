"""The checked-in SDL is the one exported from the code, and carries the contract's names."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from schema import schema_sdl

SDL_PATH = Path(__file__).resolve().parents[1] / "schema.graphql"
CONTRACT = [
    "interface Node",
    "enum Source",
    "interface Conversation implements Node",
    "type V1Conversation implements Conversation & Node",
    "type V2Conversation implements Conversation & Node",
    "interface Message implements Node",
    "type V1Message implements Message & Node",
    "type V2Message implements Message & Node",
    "enum MessageRole",
    "enum MigrationStatus",
    "scalar UUID",
    "scalar DateTime",
    "scalar JSON",
    "scalar Decimal",
    (
        "conversations(filter: ConversationFilter = null, first: Int = 20, after: String = null)"
        ": ConversationConnection!"
    ),
    "node(id: ID!): Node",
    "nodes(ids: [ID!]!): [Node]!",
    "migrateConversation(input: MigrateConversationInput!): MigrateConversationPayload!",
    "revertMigration(input: RevertMigrationInput!): RevertMigrationPayload!",
    "chatEventStats(",
    "includeMigrated: Boolean",
]


def test_checked_in_schema_matches_the_code() -> None:
    assert SDL_PATH.read_text() == schema_sdl(), "run `mwplu-gateway export-schema`"


@pytest.mark.parametrize("fragment", CONTRACT)
def test_contract_names_are_in_the_schema(fragment: str) -> None:
    assert fragment in schema_sdl()


def test_the_unrelated_schema_package_is_not_installed() -> None:
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("schema")
