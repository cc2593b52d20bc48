"""Helpers the revisions share: create only what is absent, drop only what we created.

A revision that creates auth, shared or v1 objects must leave a production database (which
already has them) untouched. Every object the gateway creates carries the comment ``MARK``;
downgrades drop an object only when it carries that mark, so a downgrade can never remove a
table the gateway did not create.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from alembic import op

MARK = "created by mwplu-gateway"


def scalar(sql: str, **params: object) -> object:
    return op.get_bind().execute(sa.text(sql), params).scalar()


def exists(qualified_name: str) -> bool:
    return scalar("SELECT to_regclass(:n) IS NOT NULL", n=qualified_name) is True


def owned(qualified_name: str) -> bool:
    return (
        scalar(
            "SELECT obj_description(to_regclass(:n), 'pg_class') = :m",
            n=qualified_name,
            m=MARK,
        )
        is True
    )


def run(statements: Iterable[str]) -> None:
    for statement in statements:
        op.execute(statement)


def script(sql: str) -> list[str]:
    """Split a DDL script on ``;`` (asyncpg runs one statement per call)."""
    return [part.strip() for part in sql.split(";") if part.strip()]


def create_table_if_absent(qualified_name: str, statements: Iterable[str]) -> bool:
    """Run ``statements`` (the first creates the table) only when the table is absent.

    Returns whether the table was created. The created table is marked as ours.
    """
    if exists(qualified_name):
        return False
    run(statements)
    op.execute(f"COMMENT ON TABLE {qualified_name} IS '{MARK}'")
    return True


def drop_owned_tables(qualified_names: Iterable[str]) -> None:
    """Drop, in the given order, each table that exists and carries our mark."""
    for name in qualified_names:
        if exists(name) and owned(name):
            op.execute(f"DROP TABLE {name}")


def enable_rls(table: str, policies: Iterable[str]) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    run(policies)


ADMIN_EXISTS = (
    "EXISTS (SELECT 1 FROM profiles WHERE id = auth.uid() AND is_admin = true)"
)


def owner_policies(table: str, noun: str, *, writable: bool = True) -> list[str]:
    """The seed's RLS pattern: owners see (and change) their rows, admins see all."""
    policies = [
        f'CREATE POLICY "Users can view own {noun}" ON {table} FOR SELECT '
        f"USING (auth.uid() = user_id)",
        f'CREATE POLICY "Admins can view all {noun}" ON {table} FOR SELECT '
        f"USING ({ADMIN_EXISTS})",
    ]
    if writable:
        policies += [
            f'CREATE POLICY "Users can create own {noun}" ON {table} FOR INSERT '
            f"WITH CHECK (auth.uid() = user_id)",
            f'CREATE POLICY "Users can update own {noun}" ON {table} FOR UPDATE '
            f"USING (auth.uid() = user_id)",
            f'CREATE POLICY "Users can delete own {noun}" ON {table} FOR DELETE '
            f"USING (auth.uid() = user_id)",
        ]
    return policies


def child_policies(table: str, noun: str, parent: str, fk: str) -> list[str]:
    """A link table is visible when its parent is visible, writable when its parent is."""
    visible = f"EXISTS (SELECT 1 FROM {parent} p WHERE p.id = {table}.{fk})"
    writable = (
        f"EXISTS (SELECT 1 FROM {parent} p WHERE p.id = {table}.{fk} "
        f"AND p.user_id = auth.uid())"
    )
    return [
        f'CREATE POLICY "Users can view {noun} of visible parents" ON {table} FOR SELECT '
        f"USING ({visible})",
        f'CREATE POLICY "Users can add {noun} to own parents" ON {table} FOR INSERT '
        f"WITH CHECK ({writable})",
        f'CREATE POLICY "Users can update {noun} of own parents" ON {table} FOR UPDATE '
        f"USING ({writable})",
        f'CREATE POLICY "Users can delete {noun} of own parents" ON {table} FOR DELETE '
        f"USING ({writable})",
    ]
