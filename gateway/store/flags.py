"""Feature flags (seed 001): the rule in Python, and the statements over ``feature_flags``.

``decide`` is the rule of DESIGN §9 exactly as ``feature_flag_decision`` runs it in SQL
(revision ``0007_feature_flags``): a test holds the two equal over thousands of users. The
gateway's own decisions are taken by the SQL function, in the transaction that acts on them, so
a flag changed through any worker (or straight in SQL) applies to the next request everywhere.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import text

from gateway.db import Db
from gateway.store import Record

# Columns a caller may set, as ``setFeatureFlag`` and ``flags set`` name them.
SETTABLE = (
    "description",
    "enabled",
    "rollout_percentage",
    "target_user_ids",
    "target_emails",
    "environments",
)
V2_CONVERSATIONS = "v2_conversations"
# A flag's key (the revision's CHECK constraint says the same).
KEY = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
KEY_RULE = "1 to 100 lowercase letters, digits, '_', '.' or '-', starting with a letter or digit"


@dataclass(frozen=True)
class Flag:
    key: str
    description: str | None = None
    enabled: bool = False
    rollout_percentage: int = 0
    target_user_ids: tuple[UUID, ...] = ()
    target_emails: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()


def bucket(key: str, user_id: UUID) -> int:
    """The user's stable bucket (0 to 99) for ``key``: the first 8 hex digits of
    ``md5(key || ':' || user_id)`` as an unsigned integer, modulo 100."""
    return int(hashlib.md5(f"{key}:{user_id}".encode()).hexdigest()[:8], 16) % 100


def decide(
    flag: Flag | None, user_id: UUID | None, email: str | None, environment: str
) -> tuple[bool, str]:
    """Whether ``flag`` is on for this user, and why."""
    if flag is None:
        return False, "unknown"
    if not flag.enabled:
        return False, "disabled"
    if flag.environments and environment not in flag.environments:
        return False, "environment"
    if user_id is not None and user_id in flag.target_user_ids:
        return True, "target_user"
    if email is not None and email in flag.target_emails:
        return True, "target_email"
    if flag.rollout_percentage >= 100:
        return True, "rollout"
    if user_id is None:
        return False, "no_user"
    if bucket(flag.key, user_id) < flag.rollout_percentage:
        return True, "rollout"
    return False, "outside_rollout"


def to_flag(row: Record) -> Flag:
    return Flag(
        key=row["key"],
        description=row["description"],
        enabled=row["enabled"],
        rollout_percentage=row["rollout_percentage"],
        target_user_ids=tuple(row["target_user_ids"] or ()),
        target_emails=tuple(row["target_emails"] or ()),
        environments=tuple(row["environments"] or ()),
    )


async def listing(db: Db, columns: str) -> list[Record]:
    """Every flag the viewer can read, by key; ``columns`` over the alias ``t``."""
    return await db.fetch(f"SELECT {columns} FROM feature_flags t ORDER BY t.key")


async def all_flags(db: Db) -> list[Flag]:
    rows = await db.rows(text(f"SELECT key, {', '.join(SETTABLE)} FROM feature_flags ORDER BY key"))
    return [to_flag(row) for row in rows]


async def put(db: Db, key: str, changes: dict[str, Any]) -> UUID:
    """Create the flag ``key`` or change the given columns of it (others are unchanged); its
    id. RLS refuses it (an error) unless the viewer is an admin or the service role."""
    unknown = set(changes) - set(SETTABLE)
    if unknown:
        raise ValueError(f"not settable: {sorted(unknown)}")
    names = list(changes)
    columns = ", ".join(["key", *names])
    values = ", ".join([":key", *(_cast(n) for n in names)])
    updates = ", ".join([*(f"{n} = EXCLUDED.{n}" for n in names), "updated_at = now()"])
    sql = (
        f"INSERT INTO feature_flags AS f ({columns}) VALUES ({values}) "
        f"ON CONFLICT (key) DO UPDATE SET {updates} RETURNING f.id"
    )
    rows = await db.fetch(sql, {"key": key, **changes})
    return UUID(str(rows[0][0]))


def _cast(name: str) -> str:
    kinds = {"target_user_ids": "uuid[]", "target_emails": "text[]", "environments": "text[]"}
    return f"CAST(:{name} AS {kinds[name]})" if name in kinds else f":{name}"


# The flag ``:key`` decided for ``:user_id``, with the email of their profile.
_DECISION = (
    "feature_flag_decision(:key, CAST(:user_id AS uuid), "
    "(SELECT p.email FROM profiles p WHERE p.id = CAST(:user_id AS uuid))) d"
)


async def decision(db: Db, key: str, user_id: UUID) -> tuple[bool, str]:
    """``feature_flag_decision`` for ``user_id``."""
    rows = await db.fetch(
        f"SELECT d.result, d.reason FROM {_DECISION}", {"key": key, "user_id": user_id}
    )
    return bool(rows[0][0]), str(rows[0][1])


async def decide_and_record(db: Db, key: str, user_id: UUID) -> tuple[bool, str]:
    """The flag's decision for ``user_id`` (with the email of their profile), taken by
    ``feature_flag_decision`` and recorded in ``feature_flag_evaluations``, in one statement."""
    sql = (
        "INSERT INTO feature_flag_evaluations (flag_key, user_id, result, reason) "
        f"SELECT :key, CAST(:user_id AS uuid), d.result, d.reason FROM {_DECISION} "
        "RETURNING result, reason"
    )
    rows = await db.fetch(sql, {"key": key, "user_id": user_id})
    return bool(rows[0][0]), str(rows[0][1])

