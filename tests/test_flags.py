"""Feature flags (DESIGN §9, seed 001): one rule in SQL and Python, the graph's flags over HTTP
as each kind of viewer, and the CLI."""

from __future__ import annotations

import hashlib
import random
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.db import migrate
from gateway.store.flags import Flag, bucket, decide
from tests.conftest import render
from tests.factories import make_user
from tests.graphql import codes, gid, gql, ok

FLAGS = (
    "{ featureFlags { id key enabled rolloutPercentage targetUserIds targetEmails environments } }"
)
SET = """
mutation ($input: SetFeatureFlagInput!) {
  setFeatureFlag(input: $input) {
    flag { key description enabled rolloutPercentage targetUserIds targetEmails environments }
  }
}
"""
FEATURES = "{ viewer { features { key enabled reason } } }"

DECISIONS = """
SELECT d.result, d.reason
FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS u(id, email, n)
CROSS JOIN LATERAL feature_flag_decision($3, u.id, u.email) d
ORDER BY u.n
"""


async def put_flag(owner: asyncpg.Connection, flag: Flag) -> None:
    await owner.execute(
        "INSERT INTO feature_flags (key, description, enabled, rollout_percentage, "
        "target_user_ids, target_emails, environments) VALUES ($1, $2, $3, $4, $5, $6, $7) "
        "ON CONFLICT (key) DO UPDATE SET enabled = $3, rollout_percentage = $4, "
        "target_user_ids = $5, target_emails = $6, environments = $7",
        flag.key, flag.description, flag.enabled, flag.rollout_percentage,
        list(flag.target_user_ids), list(flag.target_emails), list(flag.environments),
    )


async def sql_decisions(
    owner: asyncpg.Connection, key: str, users: list[tuple[uuid.UUID | None, str | None]],
    environment: str = "test",
) -> list[tuple[bool, str]]:
    async with owner.transaction():
        await owner.execute("SELECT set_config('app.environment', $1, true)", environment)
        rows = await owner.fetch(DECISIONS, [u for u, _ in users], [e for _, e in users], key)
    return [(r["result"], r["reason"]) for r in rows]


# -- the rule: SQL and Python agree --------------------------------------------------------------


def test_the_bucket_is_the_documented_md5_prefix() -> None:
    user = uuid.UUID("00000000-0000-4000-8000-000000000001")
    digest = hashlib.md5(b"v2_conversations:00000000-0000-4000-8000-000000000001").hexdigest()
    assert bucket("v2_conversations", user) == int(digest[:8], 16) % 100


@pytest.mark.parametrize("percentage", [0, 1, 25, 50, 99, 100])
async def test_sql_and_python_decide_alike_for_ten_thousand_users(
    owner: asyncpg.Connection, percentage: int
) -> None:
    rng = random.Random(percentage)
    targeted = uuid.UUID(int=rng.getrandbits(128))
    flag = Flag("rollout.test", enabled=True, rollout_percentage=percentage,
                target_user_ids=(targeted,), target_emails=("vip@example.fr",))
    await put_flag(owner, flag)
    users: list[tuple[uuid.UUID | None, str | None]] = [
        (uuid.UUID(int=rng.getrandbits(128)), None) for _ in range(10_000)
    ]
    users += [(targeted, None), (None, "vip@example.fr"), (None, None), (users[0][0], "x@y.z")]
    in_sql = await sql_decisions(owner, flag.key, users)
    in_python = [decide(flag, u, e, "test") for u, e in users]
    assert in_sql == in_python
    share = sum(result for result, _ in in_python[:10_000]) / 10_000
    assert abs(share - percentage / 100) <= 0.015
    assert in_python[10_000] == (True, "target_user")
    assert in_python[10_001] == (True, "target_email")


async def test_raising_the_percentage_only_adds_users(owner: asyncpg.Connection) -> None:
    users = [uuid.uuid4() for _ in range(2_000)]
    chosen: list[set[uuid.UUID]] = []
    for percentage in (10, 25, 60):
        await put_flag(owner, Flag("grow", enabled=True, rollout_percentage=percentage))
        decided = await sql_decisions(owner, "grow", [(u, None) for u in users])
        chosen.append({u for u, (on, _) in zip(users, decided, strict=True) if on})
    assert chosen[0] <= chosen[1] <= chosen[2]


async def test_unknown_disabled_and_other_environments_are_off(
    owner: asyncpg.Connection,
) -> None:
    user = uuid.uuid4()
    await put_flag(owner, Flag("off", enabled=False, rollout_percentage=100,
                               target_user_ids=(user,)))
    await put_flag(owner, Flag("staging.only", enabled=True, rollout_percentage=100,
                               environments=("staging",)))
    assert await sql_decisions(owner, "absent", [(user, None)]) == [(False, "unknown")]
    assert await sql_decisions(owner, "off", [(user, None)]) == [(False, "disabled")]
    assert await sql_decisions(owner, "staging.only", [(user, None)]) == [(False, "environment")]
    assert await sql_decisions(owner, "staging.only", [(user, None)], "staging") == [
        (True, "rollout")
    ]
    assert decide(None, user, None, "test") == (False, "unknown")
    assert decide(Flag("s", enabled=True, rollout_percentage=100, environments=("staging",)),
                  user, None, "test") == (False, "environment")


async def test_evaluate_feature_flag_answers_the_rule(owner: asyncpg.Connection) -> None:
    await put_flag(owner, Flag("everyone", enabled=True, rollout_percentage=100))
    # seed 001's own check: a 100 % flag is on for an email without a user id
    assert await owner.fetchval(
        "SELECT evaluate_feature_flag('everyone', NULL, 'test@example.com')"
    ) is True
    assert await owner.fetchval("SELECT evaluate_feature_flag('absent', NULL, NULL)") is False


async def test_the_revision_seeds_v2_conversations_off(owner: asyncpg.Connection) -> None:
    row = await owner.fetchrow(
        "SELECT enabled, rollout_percentage FROM feature_flags WHERE key = 'v2_conversations'"
    )
    assert row is not None and (row["enabled"], row["rollout_percentage"]) == (False, 0)


# -- the graph ---------------------------------------------------------------------------------


@pytest.fixture
async def people(owner: asyncpg.Connection) -> dict[str, uuid.UUID]:
    return {
        "user": await make_user(owner, "Camille Martin"),
        "admin": await make_user(owner, "Hélène Rousseau", is_admin=True),
    }


async def test_feature_flags_are_listed_for_admins_and_the_service_role(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID]
) -> None:
    for body in (
        await gql(client, FLAGS, user=people["admin"]),
        await gql(client, FLAGS, user=people["user"], role="service_role"),
    ):
        flags = ok(body)["featureFlags"]
        assert [f["key"] for f in flags] == sorted(f["key"] for f in flags)
        assert {"key": "v2_conversations", "enabled": False, "rolloutPercentage": 0,
                "targetUserIds": [], "targetEmails": [], "environments": []}.items() <= {
            k: v for f in flags if f["key"] == "v2_conversations" for k, v in f.items()
        }.items()


async def test_feature_flags_are_refused_to_users_and_anonymous_viewers(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID]
) -> None:
    user = await gql(client, FLAGS, user=people["user"])
    assert codes(user) == ["FORBIDDEN"] and user["data"] is None
    anonymous = await gql(client, FLAGS)
    assert codes(anonymous) == ["UNAUTHENTICATED"] and anonymous["data"] is None


async def test_an_admin_sets_a_flag_and_omitted_fields_stay(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    target = gid("Profile", people["user"])
    created = ok(await gql(client, SET, {"input": {
        "key": "beta.search", "description": "New search", "enabled": True,
        "rolloutPercentage": 25, "targetUserIds": [target], "targetEmails": ["a@b.fr"],
    }}, user=people["admin"]))["setFeatureFlag"]["flag"]
    assert created == {"key": "beta.search", "description": "New search", "enabled": True,
                       "rolloutPercentage": 25, "targetUserIds": [target],
                       "targetEmails": ["a@b.fr"], "environments": []}
    changed = ok(await gql(client, SET, {"input": {"key": "beta.search", "rolloutPercentage": 50,
                                                  "description": None}},
                           user=people["admin"]))["setFeatureFlag"]["flag"]
    assert changed == {**created, "rolloutPercentage": 50, "description": None}
    stored = await owner.fetchrow("SELECT updated_at > created_at AS moved FROM feature_flags "
                                  "WHERE key = 'beta.search'")
    assert stored is not None and stored["moved"] is True


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"key": "Bad Key"}, "key must be"),
        ({"key": "ok", "rolloutPercentage": 101}, "between 0 and 100"),
        ({"key": "ok", "rolloutPercentage": -1}, "between 0 and 100"),
        ({"key": "ok", "enabled": None}, "enabled cannot be null"),
        ({"key": "ok", "targetUserIds": ["not-an-id"]}, "malformed id"),
    ],
)
async def test_bad_flag_input_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection,
    given: dict[str, Any], message: str,
) -> None:
    before = await owner.fetch("SELECT * FROM feature_flags ORDER BY key")
    body = await gql(client, SET, {"input": given}, user=people["admin"])
    assert codes(body) == ["BAD_USER_INPUT"]
    assert message in body["errors"][0]["message"]
    assert await owner.fetch("SELECT * FROM feature_flags ORDER BY key") == before


async def test_a_conversation_id_is_not_a_target_user(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID]
) -> None:
    body = await gql(client, SET, {"input": {"key": "ok", "targetUserIds": [
        gid("V2Conversation", uuid.uuid4())]}}, user=people["admin"])
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_users_and_anonymous_viewers_cannot_set_flags(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    change = {"input": {"key": "v2_conversations", "enabled": True, "rolloutPercentage": 100}}
    assert codes(await gql(client, SET, change, user=people["user"])) == ["FORBIDDEN"]
    assert codes(await gql(client, SET, change)) == ["UNAUTHENTICATED"]
    row = await owner.fetchrow("SELECT enabled FROM feature_flags WHERE key = 'v2_conversations'")
    assert row is not None and row["enabled"] is False


async def test_rls_keeps_flags_to_admins_in_sql(
    owner: asyncpg.Connection, people: dict[str, uuid.UUID]
) -> None:
    """The policies, not only the resolver, keep flag writes to admins."""
    async def as_user(user: uuid.UUID) -> None:
        await owner.execute("SET LOCAL ROLE authenticated")
        await owner.execute("SELECT set_config('request.jwt.claims', $1, true)",
                            f'{{"sub": "{user}", "role": "authenticated"}}')

    async with owner.transaction():
        await as_user(people["user"])
        assert await owner.fetchval("SELECT count(*) FROM feature_flags") >= 1  # readable
        assert await owner.execute("UPDATE feature_flags SET enabled = true") == "UPDATE 0"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await owner.execute("INSERT INTO feature_flags (key) VALUES ('mine')")
    async with owner.transaction():
        await as_user(people["admin"])
        assert await owner.execute(
            "UPDATE feature_flags SET enabled = true WHERE key = 'v2_conversations'"
        ) == "UPDATE 1"


async def test_profile_features_decide_for_the_viewer_only(
    client: httpx.AsyncClient, people: dict[str, uuid.UUID], owner: asyncpg.Connection
) -> None:
    await put_flag(owner, Flag("v2_conversations", enabled=True, rollout_percentage=0,
                               target_user_ids=(people["user"],)))
    mine = ok(await gql(client, FEATURES, user=people["user"]))["viewer"]["features"]
    assert {"key": "v2_conversations", "enabled": True, "reason": "target_user"} in mine
    admins = ok(await gql(client, FEATURES, user=people["admin"]))["viewer"]["features"]
    assert {"key": "v2_conversations", "enabled": False, "reason": "outside_rollout"} in admins
    # someone else's profile shows no decisions
    other = ok(await gql(
        client, "query ($id: ID!) { node(id: $id) { ... on Profile { features { key } } } }",
        {"id": gid("Profile", people["user"])}, user=people["admin"],
    ))["node"]
    assert other == {"features": []}


# -- the revision's downgrade --------------------------------------------------------------------


async def test_the_revision_downgrades_to_nothing_and_back(
    server: Any, database: str, owner: asyncpg.Connection
) -> None:
    url = render(server.database_url(database))
    await put_flag(owner, Flag("kept.until.downgrade", enabled=True))
    migrate.downgrade(url, "0006_analytics")
    gone = await owner.fetchrow(
        "SELECT to_regclass('public.feature_flags') AS flags, "
        "to_regclass('public.feature_flag_evaluations') AS evaluations, "
        "to_regprocedure('public.evaluate_feature_flag(text, uuid, text)') AS evaluate, "
        "to_regprocedure('public.feature_flag_decision(text, uuid, text)') AS decision"
    )
    assert gone is not None and set(gone.values()) == {None}
    migrate.upgrade(url)
    assert await owner.fetchval("SELECT evaluate_feature_flag('v2_conversations', NULL, NULL)") \
        is False


async def test_a_feature_flags_table_made_by_seed_001_is_kept(
    server: Any, empty_database: str
) -> None:
    """A database that ran seed 001 keeps its own table (and its rows) through the revision."""
    url = render(server.database_url(empty_database))
    conn = await server.connect(empty_database)
    try:
        migrate.upgrade(url, "0006_analytics")
        await conn.execute(
            "CREATE TABLE feature_flags (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
            "key text UNIQUE NOT NULL, description text, enabled boolean DEFAULT false, "
            "rollout_percentage integer DEFAULT 0, target_user_ids uuid[], target_emails text[], "
            "environments text[], created_at timestamptz DEFAULT now(), "
            "updated_at timestamptz DEFAULT now())"
        )
        await conn.execute("INSERT INTO feature_flags (key, enabled, rollout_percentage) "
                           "VALUES ('enhanced_error_handling', true, 100)")
        migrate.upgrade(url)
        assert await conn.fetchval(
            "SELECT evaluate_feature_flag('enhanced_error_handling', NULL, 'test@example.com')"
        ) is True
        migrate.downgrade(url, "0006_analytics")
        assert await conn.fetchval("SELECT count(*) FROM feature_flags") == 2  # + v2_conversations
    finally:
        await conn.close()
