"""Feature flags as seed 001 has them: ``feature_flags``, ``feature_flag_evaluations`` and
``evaluate_feature_flag``, plus the flag ``v2_conversations`` that routes new conversations.

The rule (DESIGN §9), also in Python (``gateway.store.flags.decide``); ``feature_flag_decision``
returns it with its reason, ``evaluate_feature_flag`` only the answer:
unknown → false; disabled → false; a non-empty ``environments`` without ``app.environment`` →
false; the user's id in ``target_user_ids`` or the email in ``target_emails`` → true; else the
user's bucket (the first 8 hex digits of ``md5(key || ':' || user_id)`` as an unsigned 32-bit
integer, modulo 100) below ``rollout_percentage``. At 100 % every viewer is in, even one without
an id; below, a viewer without an id is out.

Tables are created only when absent (a database that ran seed 001 has them).

Revision ID: 0007_feature_flags
Revises: 0006_analytics
"""

from __future__ import annotations

from alembic import op

from gateway.db.migrations.ddl import (
    MARK,
    create_table_if_absent,
    drop_owned_tables,
    scalar,
)

revision = "0007_feature_flags"
down_revision = "0006_analytics"
branch_labels = None
depends_on = None

FLAGS = [
    "CREATE TABLE public.feature_flags ("
    " id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
    " key text NOT NULL UNIQUE CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,99}$'),"
    " description text,"
    " enabled boolean NOT NULL DEFAULT false,"
    " rollout_percentage integer NOT NULL DEFAULT 0"
    "  CHECK (rollout_percentage BETWEEN 0 AND 100),"
    " target_user_ids uuid[] NOT NULL DEFAULT '{}',"
    " target_emails text[] NOT NULL DEFAULT '{}',"
    " environments text[] NOT NULL DEFAULT '{}',"
    " created_at timestamptz NOT NULL DEFAULT now(),"
    " updated_at timestamptz NOT NULL DEFAULT now())",
    "CREATE INDEX idx_feature_flags_enabled ON public.feature_flags (enabled)",
    "ALTER TABLE public.feature_flags ENABLE ROW LEVEL SECURITY",
    'CREATE POLICY "Signed-in users can read flags" ON public.feature_flags FOR SELECT '
    "TO authenticated USING (true)",
    'CREATE POLICY "Admins can create flags" ON public.feature_flags FOR INSERT '
    "TO authenticated WITH CHECK (public.mwplu_is_admin())",
    'CREATE POLICY "Admins can change flags" ON public.feature_flags FOR UPDATE '
    "TO authenticated USING (public.mwplu_is_admin())",
    "GRANT SELECT, INSERT, UPDATE ON public.feature_flags TO authenticated",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON public.feature_flags TO service_role",
]

EVALUATIONS = [
    "CREATE TABLE public.feature_flag_evaluations ("
    " id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
    " flag_key text NOT NULL,"
    " user_id uuid,"
    " result boolean NOT NULL,"
    " reason text NOT NULL,"
    " evaluated_at timestamptz NOT NULL DEFAULT now())",
    "CREATE INDEX idx_flag_evaluations_flag ON public.feature_flag_evaluations "
    "(flag_key, evaluated_at DESC)",
    "CREATE INDEX idx_flag_evaluations_user ON public.feature_flag_evaluations "
    "(user_id, evaluated_at DESC)",
    "CREATE INDEX idx_flag_evaluations_time ON public.feature_flag_evaluations "
    "(evaluated_at DESC)",
    "ALTER TABLE public.feature_flag_evaluations ENABLE ROW LEVEL SECURITY",
    'CREATE POLICY "Users can view own evaluations" ON public.feature_flag_evaluations '
    "FOR SELECT USING (auth.uid() = user_id)",
    'CREATE POLICY "Admins can view all evaluations" ON public.feature_flag_evaluations '
    "FOR SELECT USING (public.mwplu_is_admin())",
    'CREATE POLICY "Users can record own evaluations" ON public.feature_flag_evaluations '
    "FOR INSERT WITH CHECK (auth.uid() = user_id)",
    "GRANT SELECT, INSERT ON public.feature_flag_evaluations TO authenticated, service_role",
]

DECISION = """
CREATE FUNCTION public.feature_flag_decision(
  flag_key text, user_id uuid, email text, OUT result boolean, OUT reason text)
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = public, pg_temp AS $$
DECLARE
  flag public.feature_flags;
  environment text := nullif(current_setting('app.environment', true), '');
BEGIN
  SELECT * INTO flag FROM public.feature_flags f WHERE f.key = flag_key;
  IF NOT FOUND THEN
    result := false; reason := 'unknown';
  ELSIF NOT flag.enabled THEN
    result := false; reason := 'disabled';
  ELSIF cardinality(flag.environments) > 0
        AND (environment IS NULL OR NOT environment = ANY (flag.environments)) THEN
    result := false; reason := 'environment';
  ELSIF feature_flag_decision.user_id = ANY (flag.target_user_ids) THEN
    result := true; reason := 'target_user';
  ELSIF feature_flag_decision.email = ANY (flag.target_emails) THEN
    result := true; reason := 'target_email';
  ELSIF flag.rollout_percentage >= 100 THEN
    result := true; reason := 'rollout';
  ELSIF feature_flag_decision.user_id IS NULL THEN
    result := false; reason := 'no_user';
  ELSIF ('x' || substr(md5(flag_key || ':' || feature_flag_decision.user_id::text), 1, 8))
          ::bit(32)::bigint % 100 < flag.rollout_percentage THEN
    result := true; reason := 'rollout';
  ELSE
    result := false; reason := 'outside_rollout';
  END IF;
END
$$
"""

EVALUATE = """
CREATE FUNCTION public.evaluate_feature_flag(flag_key text, user_id uuid, email text)
RETURNS boolean
LANGUAGE sql STABLE SECURITY INVOKER SET search_path = public, pg_temp AS $$
  SELECT (public.feature_flag_decision(flag_key, user_id, email)).result
$$
"""

FUNCTIONS = {
    "public.feature_flag_decision(text, uuid, text)": DECISION,
    "public.evaluate_feature_flag(text, uuid, text)": EVALUATE,
}

SEEDED = (
    "INSERT INTO public.feature_flags (key, description) VALUES ('v2_conversations', "
    "'New conversations go to the v2 store (projects) instead of v1') "
    "ON CONFLICT (key) DO NOTHING"
)


def _function_mark(signature: str) -> object:
    """True: ours; False: someone else's; None: absent."""
    return scalar(
        "SELECT obj_description(to_regprocedure(:s), 'pg_proc') = :m "
        "FROM (SELECT 1) one WHERE to_regprocedure(:s) IS NOT NULL",
        s=signature,
        m=MARK,
    )


def upgrade() -> None:
    create_table_if_absent("public.feature_flags", FLAGS)
    create_table_if_absent("public.feature_flag_evaluations", EVALUATIONS)
    for signature, body in FUNCTIONS.items():
        if _function_mark(signature) is None:
            op.execute(body)
            op.execute(f"COMMENT ON FUNCTION {signature} IS '{MARK}'")
            op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO authenticated, service_role")
    op.execute(SEEDED)


def downgrade() -> None:
    for signature in reversed(list(FUNCTIONS)):
        if _function_mark(signature) is True:
            op.execute(f"DROP FUNCTION {signature}")
    drop_owned_tables(["public.feature_flag_evaluations", "public.feature_flags"])
