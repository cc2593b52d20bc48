"""Supabase compatibility layer: auth schema, auth.users, auth.uid(), PostgREST roles.

Created only where absent: a real Supabase database already has all of it.

Revision ID: 0001_auth
Revises:
"""

from __future__ import annotations

from alembic import context, op

from gateway.db.migrations.ddl import MARK, exists, run, scalar

revision = "0001_auth"
down_revision = None
branch_labels = None
depends_on = None

ROLES = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
    CREATE ROLE service_role NOLOGIN BYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator') THEN
    CREATE ROLE authenticator LOGIN NOINHERIT;
  END IF;
END
$$
"""

UID = """
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(
    nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', ''
  )::uuid
$$
"""


def upgrade() -> None:
    run([ROLES, "GRANT anon, authenticated, service_role TO authenticator"])
    password = context.config.attributes.get("authenticator_password")
    if password:
        quoted = scalar("SELECT quote_literal(:p)", p=password)
        op.execute(f"ALTER ROLE authenticator PASSWORD {quoted}")
    if scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'auth'") == 0:
        op.execute("CREATE SCHEMA auth")
        op.execute(f"COMMENT ON SCHEMA auth IS '{MARK}'")
    if not exists("auth.users"):
        run(
            [
                "CREATE TABLE auth.users (id uuid PRIMARY KEY, email text)",
                f"COMMENT ON TABLE auth.users IS '{MARK}'",
            ]
        )
    if scalar("SELECT to_regprocedure('auth.uid()') IS NULL") is True:
        run([UID, f"COMMENT ON FUNCTION auth.uid() IS '{MARK}'"])
    run(
        [
            "GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role",
            "GRANT EXECUTE ON FUNCTION auth.uid() TO anon, authenticated, service_role",
            # /readyz compares the revision while logged in as authenticator (no SET ROLE).
            "GRANT SELECT ON alembic_version TO authenticator",
        ]
    )


def downgrade() -> None:
    # Roles are cluster-wide and other databases on the server may rely on them: the
    # downgrade leaves them in place and removes only this database's objects.
    op.execute("REVOKE SELECT ON alembic_version FROM authenticator")
    if (
        scalar("SELECT obj_description(to_regprocedure('auth.uid()'), 'pg_proc') = :m", m=MARK)
        is True
    ):
        op.execute("DROP FUNCTION auth.uid()")
    if exists("auth.users") and (
        scalar("SELECT obj_description('auth.users'::regclass, 'pg_class') = :m", m=MARK)
        is True
    ):
        op.execute("DROP TABLE auth.users")
    is_ours = scalar(
        "SELECT obj_description(oid, 'pg_namespace') = :m FROM pg_namespace "
        "WHERE nspname = 'auth'",
        m=MARK,
    )
    if is_ours is True:
        op.execute("DROP SCHEMA auth")
