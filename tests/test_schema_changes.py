"""Breaking changes of the graph are listed in CHANGELOG.md before they ship (issue 15)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.tools.schema_changes import compare

OLD = """
type Query { project(id: ID!): Project, projects(first: Int): [Project!]! }
type Project { id: ID!, name: String, status: Status! }
enum Status { DRAFT ACTIVE }
"""
REPO = Path(__file__).resolve().parent.parent


def test_a_removed_field_is_breaking_until_the_changelog_lists_it() -> None:
    new = OLD.replace(", name: String", "")
    found = compare(OLD, new, changelog="")
    assert found.unlisted == ["Field Project.name was removed."]
    listed = compare(OLD, new, changelog="## Unreleased\n- Field Project.name was removed.\n")
    assert listed.unlisted == [] and listed.listed == ["Field Project.name was removed."]


def test_additions_are_not_breaking_and_some_are_dangerous() -> None:
    new = OLD.replace("DRAFT ACTIVE", "DRAFT ACTIVE ARCHIVED").replace(
        "name: String", "name: String, color: String"
    ).replace("projects(first: Int)", "projects(first: Int, after: String)")
    found = compare(OLD, new, changelog="")
    assert found.unlisted == [] and found.listed == []
    assert sorted(found.dangerous) == [
        "An optional argument Query.projects(after:) was added.",
        "Enum value Status.ARCHIVED was added.",
    ]


def test_a_required_argument_and_a_narrowed_type_are_breaking() -> None:
    new = OLD.replace("projects(first: Int)", "projects(first: Int!)").replace(
        "status: Status!", "status: String!"
    )
    assert len(compare(OLD, new, changelog="").unlisted) == 2


def test_the_cli_compares_the_code_with_a_release() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.tools.cli", "schema-changes", "--base", "HEAD"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "no unlisted breaking change since HEAD" in result.stdout
