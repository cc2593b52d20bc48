"""What one run shares between its steps: options, scale, token, servers, statement counts."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from bench.graph.servers import Server
from bench.graph_data import Scale


@dataclass
class Context:
    args: argparse.Namespace
    scale: Scale
    tmp: Path
    token: str
    postmaster: int | None  # the database server's, when its processes are visible here
    servers: dict[str, Server] = field(default_factory=dict)
    statements: dict[tuple[str, str], str] = field(default_factory=dict)
