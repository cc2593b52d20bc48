"""Operator tools: the CLI, bulk migration, demo data and the embedded PostgreSQL."""
