"""Global ids (``resolvers.ids``): base64url of ``Type:uuid``, written without the url-safe
translation, which such text never needs."""

from __future__ import annotations

import base64
import random
import re
import uuid

import asyncpg
import pytest

from resolvers.ids import NODE_TYPES, from_global_id, to_global_id


def reference(type_name: str, database_id: uuid.UUID) -> str:
    text = f"{type_name}:{database_id}".encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def test_every_node_type_is_a_name_of_letters_and_digits() -> None:
    """The premise of writing ids without translating '+' and '/'."""
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name) for name in NODE_TYPES)


@pytest.mark.parametrize("type_name", sorted(NODE_TYPES))
def test_ids_are_url_safe_base64_of_type_and_uuid(type_name: str) -> None:
    rng = random.Random(type_name)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(3000)]
    ids += [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]
    for database_id in ids:
        written = to_global_id(type_name, database_id)
        assert written == reference(type_name, database_id)
        assert "+" not in written and "/" not in written and "=" not in written
        assert from_global_id(written) == (type_name, database_id)


async def test_the_drivers_uuids_are_written_alike(owner: asyncpg.Connection) -> None:
    """asyncpg's own uuid type, as rows carry it."""
    rows = await owner.fetch("SELECT gen_random_uuid() AS id FROM generate_series(1, 500)")
    for row in rows:
        database_id = row["id"]
        assert type(database_id) is not uuid.UUID  # asyncpg's pgproto.UUID
        assert to_global_id("V2Message", database_id) == reference(
            "V2Message", uuid.UUID(str(database_id))
        )
