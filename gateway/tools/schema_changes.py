"""Breaking changes of the graph against the last release (graphql-core's
``find_breaking_changes``): each must be listed in ``CHANGELOG.md`` before it ships, so that
clients read about it first; fields are retired with ``@deprecated(reason:)`` first."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from graphql import build_schema, find_breaking_changes, find_dangerous_changes


@dataclass(frozen=True)
class Changes:
    unlisted: list[str]  # breaking changes CHANGELOG.md does not mention
    listed: list[str]
    dangerous: list[str]  # not breaking, but clients may notice (a new enum value, …)


def compare(old_sdl: str, new_sdl: str, changelog: str) -> Changes:
    old, new = build_schema(old_sdl), build_schema(new_sdl)
    breaking = [change.description for change in find_breaking_changes(old, new)]
    return Changes(
        unlisted=[d for d in breaking if d not in changelog],
        listed=[d for d in breaking if d in changelog],
        dangerous=[change.description for change in find_dangerous_changes(old, new)],
    )


def last_release(repo: Path) -> str | None:
    """The newest tag reachable from HEAD (None: no release yet)."""
    found = subprocess.run(
        ["git", "-C", str(repo), "describe", "--tags", "--abbrev=0"],
        capture_output=True, text=True, check=False,
    )
    return found.stdout.strip() or None if found.returncode == 0 else None


def released_sdl(repo: Path, ref: str, path: str = "schema.graphql") -> str:
    shown = subprocess.run(
        ["git", "-C", str(repo), "show", f"{ref}:{path}"],
        capture_output=True, text=True, check=False,
    )
    if shown.returncode != 0:
        raise LookupError(f"{path} at {ref}: {shown.stderr.strip() or 'not found'}")
    return shown.stdout
