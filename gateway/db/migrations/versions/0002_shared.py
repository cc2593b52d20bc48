"""Shared reference tables: profiles, cities, zonings, zones, typologies, documents.

Each is created only when absent (production has them) and then carries the gateway's mark.

Revision ID: 0002_shared
Revises: 0001_auth
"""

from __future__ import annotations

from alembic import op

from gateway.db.migrations.ddl import MARK, create_table_if_absent, drop_owned_tables, scalar

revision = "0002_shared"
down_revision = "0001_auth"
branch_labels = None
depends_on = None

READERS = "anon, authenticated, service_role"

# profiles' own admin policy cannot query profiles (infinite recursion): a SECURITY DEFINER
# function owned by the migrating role reads the flag without RLS.
IS_ADMIN = """
CREATE FUNCTION public.mwplu_is_admin() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT coalesce((SELECT is_admin FROM public.profiles WHERE id = auth.uid()), false)
$$
"""

REFERENCE = {
    "cities": [
        "CREATE TABLE cities (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
        "name text NOT NULL, insee_code text)",
        "CREATE INDEX idx_cities_name ON cities (name, id)",
    ],
    "zonings": [
        "CREATE TABLE zonings (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
        "city_id uuid REFERENCES cities(id), name text)",
        "CREATE INDEX idx_zonings_city ON zonings (city_id)",
    ],
    "zones": [
        "CREATE TABLE zones (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
        "zoning_id uuid REFERENCES zonings(id), city_id uuid REFERENCES cities(id), "
        "code text, label text)",
        "CREATE INDEX idx_zones_city ON zones (city_id, code)",
        "CREATE INDEX idx_zones_zoning ON zones (zoning_id)",
    ],
    "typologies": [
        "CREATE TABLE typologies (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text)",
    ],
    "documents": [
        "CREATE TABLE documents (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
        "title text, url text, city_id uuid REFERENCES cities(id), "
        "zoning_id uuid REFERENCES zonings(id), zone_id uuid REFERENCES zones(id), "
        "typology_id uuid REFERENCES typologies(id), created_at timestamptz DEFAULT now())",
        "CREATE INDEX idx_documents_title ON documents (title, id)",
        "CREATE INDEX idx_documents_city ON documents (city_id)",
        "CREATE INDEX idx_documents_zone ON documents (zone_id)",
    ],
}

PROFILES = [
    "CREATE TABLE profiles (id uuid PRIMARY KEY REFERENCES auth.users(id) ON DELETE CASCADE, "
    "email text, full_name text, is_admin boolean NOT NULL DEFAULT false, "
    "created_at timestamptz DEFAULT now())",
    IS_ADMIN,
    f"COMMENT ON FUNCTION public.mwplu_is_admin() IS '{MARK}'",
    "GRANT EXECUTE ON FUNCTION public.mwplu_is_admin() TO anon, authenticated, service_role",
    "ALTER TABLE profiles ENABLE ROW LEVEL SECURITY",
    'CREATE POLICY "Users can view own profile" ON profiles FOR SELECT '
    "USING (auth.uid() = id)",
    'CREATE POLICY "Admins can view all profiles" ON profiles FOR SELECT '
    "USING (public.mwplu_is_admin())",
    'CREATE POLICY "Users can update own profile" ON profiles FOR UPDATE '
    "USING (auth.uid() = id)",
    "GRANT SELECT ON profiles TO authenticated, service_role",
    "GRANT UPDATE (full_name) ON profiles TO authenticated",
    "GRANT INSERT, UPDATE, DELETE ON profiles TO service_role",
]


def upgrade() -> None:
    create_table_if_absent("public.profiles", PROFILES)
    for table, statements in REFERENCE.items():
        create_table_if_absent(
            f"public.{table}",
            [
                *statements,
                f"GRANT SELECT ON {table} TO {READERS}",
                f"GRANT INSERT, UPDATE, DELETE ON {table} TO service_role",
            ],
        )


def downgrade() -> None:
    drop_owned_tables(
        f"public.{t}" for t in ("documents", "typologies", "zones", "zonings", "cities")
    )
    drop_owned_tables(["public.profiles"])
    if (
        scalar(
            "SELECT obj_description(to_regprocedure('public.mwplu_is_admin()'), 'pg_proc') = :m",
            m=MARK,
        )
        is True
    ):
        op.execute("DROP FUNCTION public.mwplu_is_admin()")
