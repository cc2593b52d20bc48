"""The workloads: each one's GraphQL (and PostGraphile's same shape) and the request bodies
every server cycles through under wrk."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import graph_data
from bench.graph_data import Scale, row_id

R1 = """query R1 {
  conversations(first: 50, filter: {source: V2}) {
    edges { node {
      title lastMessageAt
      ... on V2Conversation { project { name mainCity { name } } }
      messages(first: 10) { edges { node { role text createdAt } } }
    } }
  }
}"""

# The same shape in PostGraphile 5's own names (Amber preset inflection).
R1_POSTGRAPHILE = """query R1 {
  allV2Conversations(first: 50, orderBy: [LAST_MESSAGE_AT_DESC, PRIMARY_KEY_DESC]) {
    nodes {
      title lastMessageAt
      v2ProjectByProjectId { name cityByMainCityId { name } }
      v2MessagesByConversationId(first: 10, orderBy: [CREATED_AT_ASC, PRIMARY_KEY_ASC]) {
        nodes { role message createdAt }
      }
    }
  }
}"""

R3 = """query R3($id: ID!) {
  node(id: $id) { id ... on Conversation { source title lastMessageAt messageCount } }
}"""
# PostGraphile has no unified conversation: primary-key lookups of the same rows (v1 rows
# without the derived title and message count, which only the gateway computes).
R3_POSTGRAPHILE = {
    "V2Conversation": "query R3($id: UUID!) { v2ConversationByRowId(rowId: $id) "
    "{ id title lastMessageAt messageCount } }",
    "V1Conversation": "query R3($id: UUID!) { chatConversationByRowId(rowId: $id) "
    "{ id lastMessageAt isActive } }",
}

R4 = """query R4 {
  chatEventStats(groupBy: [SOURCE, DAY]) { source day events tokensTotal costTotal }
}"""
R4_SQL = """
SELECT metadata->>'source' AS source, (created_at AT TIME ZONE 'UTC')::date AS day,
  count(*)::int AS events, coalesce(sum(tokens_total), 0)::bigint AS tokens_total,
  coalesce(sum(cost_total), 0)::numeric AS cost_total
FROM analytics.chat_events GROUP BY 1, 2 ORDER BY 1, 2
"""

R3_IDS = 500  # distinct node ids cycled through by R3

# A write: each request migrates another v1 conversation into v2 (one transaction: the copy of
# its messages, then the payload read through the engine as the viewer). Run last: it changes
# what the listings show.
R7 = """mutation R7($id: ID!) {
  migrateConversation(input: {conversationId: $id}) {
    alreadyMigrated migration { status } conversation { id messageCount } project { id }
  }
}"""
R7_CONVERSATIONS = 5000  # distinct conversations, more than a run migrates

# A write: postMessage into a v2 conversation (one transaction: the conversation row locked,
# the message inserted at its next turn with the conversation's count and last_message_at,
# the analytics event as the service role, then the payload read as the viewer). Each request
# is its conversation owner's (an authenticated token per request: RLS decides, as for a user
# of the app). R8 spreads the requests over R8_CONVERSATIONS conversations of many owners, so
# that the row lock is not all that is measured; R8-hot sends them all to one conversation,
# the worst case (serialised by the row lock). Run after every read: they change what the
# listings show.
R8 = """mutation R8($input: PostMessageInput!) {
  postMessage(input: $input) {
    message { id conversationTurn } conversation { lastMessageAt } event { id }
  }
}"""
R8_CONVERSATIONS = 200  # distinct conversations R8 cycles through
R8_TEXT = "bench R8: quelle est la hauteur maximale autorisée en zone UB ? n°"  # + a number

# A connection nested under a list: projects, each with a page of conversations (and their
# count), each with its first messages.
R6 = """query R6 {
  projects(first: 20) { edges { node {
    name
    conversations(first: 10) { totalCount edges { node {
      title lastMessageAt
      messages(first: 5) { edges { node { role text createdAt } } }
    } } }
  } } }
}"""
R6_POSTGRAPHILE = """query R6 {
  allV2Projects(first: 20, orderBy: [CREATED_AT_DESC, PRIMARY_KEY_DESC]) { nodes {
    name
    v2ConversationsByProjectId(first: 10, orderBy: [LAST_MESSAGE_AT_DESC, PRIMARY_KEY_DESC]) {
      totalCount nodes {
        title lastMessageAt
        v2MessagesByConversationId(first: 5, orderBy: [CREATED_AT_ASC, PRIMARY_KEY_ASC]) {
          nodes { role message createdAt }
        }
      }
    }
  } }
}"""


def reference_query() -> str:
    """R2: the mixed v1/v2 reference query of the unified-graph issue (one source of truth)."""
    from tests.test_statement_count import REFERENCE

    return str(REFERENCE)


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    token: str | None = None  # its own bearer token (None: the run's service token)


@dataclass
class Workload:
    key: str
    title: str
    # server name -> the request bodies it cycles through (absent: the server cannot answer)
    requests: dict[str, list[Request]]
    # statements per request of the raw limit (its reads are one statement each)
    raw_statements: str = "1"
    # servers of the run that cannot answer it, and why (a "—" row in its table)
    absent: dict[str, str] = field(default_factory=dict)
    # counted, checked and measured after every other workload: its writes change what the
    # read workloads show
    deferred: bool = False
    # it writes: measured once whatever ``--rounds`` (a second round would measure other
    # work: R7's conversations are migrated by then)
    writes_data: bool = False
    # the conversations it writes to (row ids), checked after the run
    writes: list[uuid.UUID] = field(default_factory=list)


def graphql_body(query: str, variables: dict[str, Any] | None = None) -> bytes:
    payload: dict[str, Any] = {"query": query}
    if variables:
        payload["variables"] = variables
    return json.dumps(payload, separators=(",", ":")).encode()


def r3_targets(scale: Scale, count: int = R3_IDS, seed: int = 3) -> list[tuple[str, uuid.UUID]]:
    """Random conversations, alternately v1 and v2, as (node type, row id)."""
    rng = random.Random(seed)
    n = scale.conversations
    picks = []
    for k in range(min(count, 2 * n)):
        if k % 2:
            picks.append(("V2Conversation", row_id(graph_data.T_V2_CONV, rng.randrange(n))))
        else:
            picks.append(("V1Conversation", row_id(graph_data.T_V1_CONV, rng.randrange(n))))
    return picks


def r8_targets(
    scale: Scale, count: int = R8_CONVERSATIONS, seed: int = 8
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Random v2 conversations (of many owners), as (conversation row id, its owner's user
    id) — the owner as ``bench.graph_data`` assigns it."""
    rng = random.Random(seed)
    picks = []
    for i in rng.sample(range(scale.conversations), min(count, scale.conversations)):
        owner = row_id(graph_data.T_USER, (i % scale.projects) % graph_data.USERS)
        picks.append((row_id(graph_data.T_V2_CONV, i), owner))
    return picks


def r8_workloads(
    scale: Scale, user_token: Callable[[uuid.UUID], str], with_postgraphile: bool
) -> list[Workload]:
    """R8 (postMessage over many conversations) and R8-hot (all into one), on the gateway
    and on the raw limit (``POST /post-message``: the same writes in a bare transaction)."""
    from resolvers.ids import to_global_id

    targets = r8_targets(scale)
    tokens = {owner: user_token(owner) for _, owner in targets}

    def requests(picks: list[tuple[uuid.UUID, uuid.UUID]]) -> dict[str, list[Request]]:
        out: dict[str, list[Request]] = {"gateway": [], "raw limit": []}
        for k, (conversation, owner) in enumerate(picks):
            body = graphql_body(R8, {"input": {
                "conversationId": to_global_id("V2Conversation", conversation),
                "text": f"{R8_TEXT}{k}",
            }})
            out["gateway"].append(Request("/graphql", body, tokens[owner]))
            out["raw limit"].append(Request("/post-message", body, tokens[owner]))
        return out

    # as the gateway's are counted: the BEGIN and SET LOCAL set-up is not a statement, nor is COMMIT
    raw = "3 (+2 setup)"
    absent = {"postgraphile": "no equivalent mutation"} if with_postgraphile else {}
    return [
        Workload(
            "R8",
            f"postMessage into {len(targets)} v2 conversations of {len(tokens)} users "
            f"round-robin, each request its conversation owner's (authenticated: RLS), a write "
            f"and its payload",
            requests(targets), raw_statements=raw, absent=absent, deferred=True, writes_data=True,
            writes=[c for c, _ in targets],
        ),
        Workload(
            "R8-hot",
            "postMessage, every request into ONE v2 conversation (serialised by its row lock)",
            requests(targets[:1]), raw_statements=raw, absent=absent, deferred=True,
            writes_data=True, writes=[targets[0][0]],
        ),
    ]


def build_workloads(
    scale: Scale, with_postgraphile: bool, user_token: Callable[[uuid.UUID], str] | None = None
) -> list[Workload]:
    """Every workload; R8 and R8-hot only with ``user_token`` (a bearer token for a user id:
    their requests are the conversation owners')."""
    from resolvers.ids import to_global_id

    targets = r3_targets(scale)
    r3_gateway = [
        Request("/graphql", graphql_body(R3, {"id": to_global_id(t, i)})) for t, i in targets
    ]
    r3_raw = [Request("/node", graphql_body(R3, {"id": to_global_id(t, i)})) for t, i in targets]
    workloads = [
        Workload(
            "R1",
            "first 50 v2 conversations + project, city, first 10 messages",
            {
                "gateway": [Request("/graphql", graphql_body(R1))],
                "raw limit": [Request("/graphql", graphql_body(R1))],
            },
        ),
        Workload(
            "R2",
            "mixed v1/v2 reference query (tests/test_statement_count.py), first: 50",
            {"gateway": [Request("/graphql", graphql_body(reference_query(), {"first": 50}))]},
        ),
        Workload(
            "R3",
            f"node(id:) of {len(targets)} random conversations of both stores"
            + (" (postgraphile: primary-key lookups of the same rows, v1 without the derived "
               "title and count)" if with_postgraphile else ""),
            {"gateway": r3_gateway, "raw limit": r3_raw},
        ),
        Workload(
            "R4",
            f"chatEventStats(groupBy: [SOURCE, DAY]) over {scale.events:,} events",
            {"gateway": [Request("/graphql", graphql_body(R4))]},
        ),
        Workload(
            "R6",
            "first 20 projects, each with 10 conversations (+ totalCount), each with 5 messages",
            {"gateway": [Request("/graphql", graphql_body(R6))]},
        ),
        Workload(
            "R7",
            "migrateConversation of a different v1 conversation per request (a write and its "
            "payload)",
            {
                "gateway": [
                    Request(
                        "/graphql",
                        graphql_body(
                            R7,
                            {"id": to_global_id(
                                "V1Conversation", row_id(graph_data.T_V1_CONV, i)
                            )},
                        ),
                    )
                    for i in range(min(R7_CONVERSATIONS, scale.conversations))
                ]
            },
            writes_data=True,
        ),
    ]
    if user_token is not None:
        workloads += r8_workloads(scale, user_token, with_postgraphile)
    if with_postgraphile:
        workloads[0].requests["postgraphile"] = [
            Request("/graphql", graphql_body(R1_POSTGRAPHILE))
        ]
        workloads[2].requests["postgraphile"] = [
            Request("/graphql", graphql_body(R3_POSTGRAPHILE[t], {"id": str(i)}))
            for t, i in targets
        ]
        workloads[4].requests["postgraphile"] = [
            Request("/graphql", graphql_body(R6_POSTGRAPHILE))
        ]
    return workloads
