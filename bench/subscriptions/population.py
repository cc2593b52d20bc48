"""The users, admins and v2 conversations the subscribers watch, and which socket is whose."""

from __future__ import annotations

import argparse
import math
import uuid
from dataclasses import dataclass

import asyncpg

CONNECTIONS_PER_VIEWER = 10  # the gateway's default GATEWAY_MAX_CONNECTIONS_PER_VIEWER


@dataclass(frozen=True)
class Population:
    conversations: list[uuid.UUID]
    owners: list[uuid.UUID]  # of each conversation
    sockets: list[tuple[int, uuid.UUID]]  # (conversation index, viewer) of each socket
    admins: int


def assign(
    args: argparse.Namespace, owners: list[uuid.UUID]
) -> tuple[list[tuple[int, uuid.UUID]], int]:
    """Each socket's conversation and viewer. Distinct viewers: slot 0 is the owner, slot j the
    admin ``j - 1 + (per - 1) * (c // CONNECTIONS_PER_VIEWER)``, so that no two sockets of a
    conversation share a viewer and no admin holds more connections than the gateway allows."""
    per, sockets, admins = args.per_conversation, [], 0
    for n in range(args.subscribers):
        c, slot = divmod(n, per)
        if not args.distinct_viewers or slot == 0:
            sockets.append((c, owners[c]))
            continue
        admin = slot - 1 + (per - 1) * (c // CONNECTIONS_PER_VIEWER)
        admins = max(admins, admin + 1)
        sockets.append((c, uuid.UUID(int=admin + 1)))
    return sockets, admins


async def populate(conn: asyncpg.Connection, args: argparse.Namespace) -> Population:
    count = math.ceil(args.subscribers / args.per_conversation)
    owners = [uuid.uuid4() for _ in range(count)]
    sockets, admins = assign(args, owners)
    people = [(u, f"owner{i}@bench.example", False) for i, u in enumerate(owners)]
    people += [(uuid.UUID(int=a + 1), f"admin{a}@bench.example", True) for a in range(admins)]
    projects = [uuid.uuid4() for _ in owners]
    conversations = [uuid.uuid4() for _ in owners]
    await conn.executemany("INSERT INTO auth.users (id, email) VALUES ($1, $2)",
                           [(u, email) for u, email, _ in people])
    await conn.executemany(
        "INSERT INTO profiles (id, email, full_name, is_admin) VALUES ($1, $2, $2, $3)", people
    )
    await conn.executemany("INSERT INTO v2_projects (id, user_id, name) VALUES ($1, $2, 'Projet')",
                           list(zip(projects, owners, strict=True)))
    await conn.executemany(
        "INSERT INTO v2_conversations (id, user_id, project_id, title) "
        "VALUES ($1, $2, $3, 'Bench')",
        list(zip(conversations, owners, projects, strict=True)),
    )
    await conn.execute("ANALYZE")
    return Population(conversations, owners, sockets, admins)
