"""The graph: strawberry types, one module per domain, and the root ``Query``/``Mutation``."""

from schema.root import build_schema, schema_sdl

__all__ = ["build_schema", "schema_sdl"]
