"""Parity between v1 conversations and their v2 copies, in four set-based queries.

For every ``completed`` migration the v1 messages are paired with the v2 messages that are
copies (``metadata.migrated_from_v1``; messages written natively in v2 after the migration are
the v2 conversation's own life, not a parity problem). Messages pair by ``created_at`` and,
among equal timestamps, by content rank, so a changed text still pairs with its original, a
deleted copy leaves its v1 original unpaired, and a changed timestamp leaves both unpaired.

Problem kinds (each reported once per conversation and kind, with the first instance as
detail and the number of messages concerned):

- message level: ``missing`` (a v1 message written before the migration has no copy),
  ``extra`` (a copy has no v1 original), ``drift`` (a v1 message without copy written after
  ``migrated_at``: the v1 application wrote to a migrated conversation), ``role``, ``text``,
  ``author``, ``turn``, ``metadata`` (v1's plus ``migrated_from_v1``), ``documents`` (the
  message's referenced documents), ``reply`` (the copy must reply to the copy of the v1
  message's reply target), ``order`` (paired messages sorted by ``(created_at, id)`` on each
  side must line up: equal timestamps keep v1's order), ``message_count`` (v1 messages written
  before the migration vs copies);
- conversation level: ``orphan`` (the v1 original disappeared: a completed row whose v1 id went
  NULL), ``missing_copy`` (the v2 copy disappeared), ``document_link`` (the v1 document vs the
  v2 links ``added_by = 'migration'``), ``stored_count`` (the v2 conversation's stored
  ``message_count``/``document_count``/``last_message_at`` differ from the live values).

Not problems, but reported: counts per tracking status, v1 conversations with no completed
migration, and the failed migrations with their error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import text

from gateway.db import Db

KINDS: Mapping[str, str] = {
    "orphan": "v1 original disappeared",
    "missing_copy": "v2 copy disappeared",
    "drift": "v1 message written after the migration",
    "message_count": "message counts differ",
    "missing": "v1 message without v2 copy",
    "extra": "v2 copy without v1 original",
    "order": "message order differs",
    "role": "role differs",
    "text": "text differs",
    "author": "author differs",
    "turn": "conversation turn differs",
    "metadata": "metadata differs",
    "documents": "message documents differ",
    "reply": "reply target differs",
    "document_link": "conversation document link differs",
    "stored_count": "stored counts differ from live values",
}
STATUSES = ("pending", "completed", "failed", "reverted")


@dataclass(frozen=True)
class Problem:
    kind: str
    v1_conversation_id: UUID | None
    v2_conversation_id: UUID | None
    detail: str
    messages: int = 0  # messages concerned (message-level kinds)

    @property
    def description(self) -> str:
        return KINDS.get(self.kind, self.kind)


@dataclass(frozen=True)
class VerificationReport:
    statuses: Mapping[str, int]
    not_migrated: int
    failed: tuple[Problem, ...] = ()
    problems: tuple[Problem, ...] = ()
    kinds: Mapping[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No parity problem (failed and not-yet-migrated conversations are not problems)."""
        return not self.problems

    @property
    def checked(self) -> int:
        return self.statuses.get("completed", 0)

    def of_kind(self, *kinds: str) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.kind in kinds)

    @property
    def drift(self) -> tuple[Problem, ...]:
        return self.of_kind("drift")

    @property
    def orphans(self) -> tuple[Problem, ...]:
        return self.of_kind("orphan")

    @property
    def count_mismatches(self) -> tuple[Problem, ...]:
        return self.of_kind("message_count", "stored_count")

    @property
    def conversations(self) -> set[UUID]:
        """The migrations (by v1 id, else v2 id) with at least one problem."""
        return {
            i for p in self.problems if (i := p.v1_conversation_id or p.v2_conversation_id)
        }


STATUS_COUNTS = text(
    """
    SELECT coalesce(migration_status, 'unknown') AS status, count(*) AS n
    FROM migration_tracking GROUP BY 1
    UNION ALL
    SELECT 'not_migrated', count(*) FROM chat_conversations c
    WHERE NOT EXISTS (SELECT 1 FROM migration_tracking t WHERE t.v1_conversation_id = c.id
                      AND t.migration_status = 'completed')
    """
)

FAILED = text(
    """
    SELECT v1_conversation_id, v2_conversation_id, coalesce(error_message, '') AS detail
    FROM migration_tracking WHERE migration_status = 'failed'
    ORDER BY migrated_at, id
    """
)

TS = "to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

# Content rank among equal timestamps: identical on both sides when the copy is faithful.
RANK = (
    "row_number() OVER (PARTITION BY t.v1, m.created_at ORDER BY m.role, md5(m.message), "
    "m.conversation_turn, m.id)"
)


def _paired_detail(condition: str, detail: str) -> str:
    return (
        f"CASE WHEN a.id IS NOT NULL AND b.id IS NOT NULL AND ({condition}) "
        f"THEN {detail} END"
    )


# Rows stay narrow (a digest and the first 40 characters stand for the text), so that the
# 2 x N messages sort and pair in memory; a pair's differences are computed once, in the join.
MESSAGES = text(
    f"""
    WITH t AS MATERIALIZED (
      SELECT v1_conversation_id AS v1, v2_conversation_id AS v2, migrated_at
      FROM migration_tracking
      WHERE migration_status = 'completed'
        AND v1_conversation_id IS NOT NULL AND v2_conversation_id IS NOT NULL
    ),
    a AS (
      SELECT t.v1, t.v2, t.migrated_at, m.id, m.user_id, m.role, md5(m.message) AS digest,
             left(m.message, 40) AS head, char_length(m.message) AS length,
             m.conversation_turn AS turn, m.created_at, m.reply_to_message_id AS reply_to,
             coalesce(m.metadata, '{{}}'::jsonb) || '{{"migrated_from_v1": true}}'::jsonb
               AS metadata,
             CASE WHEN m.document_id IS NULL THEN ARRAY[]::uuid[] ELSE ARRAY[m.document_id]
             END AS documents,
             {RANK} AS k
      FROM t JOIN chat_messages m ON m.conversation_id = t.v1
    ),
    b AS (
      SELECT t.v1, t.v2, m.id, m.user_id, m.role, md5(m.message) AS digest,
             left(m.message, 40) AS head, char_length(m.message) AS length,
             m.conversation_turn AS turn, m.created_at, m.reply_to_message_id AS reply_to,
             m.metadata, coalesce(m.referenced_documents, ARRAY[]::uuid[]) AS documents,
             {RANK} AS k
      FROM t JOIN v2_messages m ON m.conversation_id = t.v2
      WHERE m.metadata @> '{{"migrated_from_v1": true}}'::jsonb
    ),
    p AS MATERIALIZED (
      SELECT coalesce(a.v1, b.v1) AS v1, coalesce(a.v2, b.v2) AS v2, a.migrated_at,
             coalesce(a.created_at, b.created_at) AS at, a.id AS a_id, b.id AS b_id,
             a.reply_to AS a_reply, b.reply_to AS b_reply,
             {_paired_detail("a.role <> b.role",
                             "format('message %s: v1 %s, v2 %s', b.id, a.role, b.role)")}
               AS d_role,
             {_paired_detail("a.digest <> b.digest",
                             "format('message %s: v1 %s (%s characters), v2 %s (%s characters)', "
                             "b.id, quote_literal(a.head), a.length, quote_literal(b.head), "
                             "b.length)")}
               AS d_text,
             {_paired_detail("a.user_id IS DISTINCT FROM b.user_id",
                             "format('message %s: v1 %s, v2 %s', b.id, a.user_id, b.user_id)")}
               AS d_author,
             {_paired_detail("a.turn IS DISTINCT FROM b.turn",
                             "format('message %s: v1 %s, v2 %s', b.id, a.turn, b.turn)")}
               AS d_turn,
             {_paired_detail("a.metadata IS DISTINCT FROM b.metadata",
                             "format('message %s: expected %s, found %s', b.id, a.metadata, "
                             "b.metadata)")}
               AS d_metadata,
             {_paired_detail("a.documents IS DISTINCT FROM b.documents",
                             "format('message %s: expected %s, found %s', b.id, a.documents, "
                             "b.documents)")}
               AS d_documents
      FROM a FULL JOIN b ON b.v1 = a.v1 AND b.created_at = a.created_at AND b.k = a.k
    ),
    paired AS MATERIALIZED (
      SELECT v1, v2, at, a_id, b_id, a_reply, b_reply,
             row_number() OVER (PARTITION BY v1 ORDER BY at, a_id) AS a_rank,
             row_number() OVER (PARTITION BY v1 ORDER BY at, b_id) AS b_rank
      FROM p WHERE a_id IS NOT NULL AND b_id IS NOT NULL
    ),
    issues AS (
      SELECT p.v1, p.v2, p.at, x.kind, x.detail
      FROM p CROSS JOIN LATERAL (VALUES
        ('missing', CASE WHEN p.b_id IS NULL AND p.at <= p.migrated_at THEN
          format('v1 message %s (%s) has no v2 copy', p.a_id, {TS.format("p.at")}) END),
        ('drift', CASE WHEN p.b_id IS NULL AND p.at > p.migrated_at THEN
          format('v1 message %s written at %s, after the migration at %s', p.a_id,
                 {TS.format("p.at")}, {TS.format("p.migrated_at")}) END),
        ('extra', CASE WHEN p.a_id IS NULL THEN
          format('v2 message %s (%s) has no v1 original', p.b_id, {TS.format("p.at")}) END),
        ('role', p.d_role), ('text', p.d_text), ('author', p.d_author), ('turn', p.d_turn),
        ('metadata', p.d_metadata), ('documents', p.d_documents)
      ) AS x(kind, detail)
      WHERE (p.a_id IS NULL OR p.b_id IS NULL
             OR num_nonnulls(p.d_role, p.d_text, p.d_author, p.d_turn, p.d_metadata,
                             p.d_documents) > 0)
        AND x.detail IS NOT NULL
      UNION ALL
      SELECT q.v1, q.v2, q.at, x.kind, x.detail
      FROM (
        SELECT q.*, target.b_id AS expected
        FROM paired q LEFT JOIN paired target ON target.a_id = q.a_reply
      ) q
      CROSS JOIN LATERAL (VALUES
        ('reply', CASE WHEN q.b_reply IS DISTINCT FROM q.expected
                         OR (q.a_reply IS NOT NULL AND q.expected IS NULL) THEN
          format('message %s replies to %s; expected %s (the copy of %s)', q.b_id,
                 coalesce(q.b_reply::text, 'nothing'), coalesce(q.expected::text, 'nothing'),
                 coalesce(q.a_reply::text, 'nothing')) END),
        ('order', CASE WHEN q.a_rank <> q.b_rank THEN
          format('message %s is #%s in v1 but #%s in v2', q.b_id, q.a_rank, q.b_rank) END)
      ) AS x(kind, detail)
      WHERE (q.a_rank <> q.b_rank OR q.b_reply IS DISTINCT FROM q.expected
             OR (q.a_reply IS NOT NULL AND q.expected IS NULL))
        AND x.detail IS NOT NULL
    ),
    counts AS (
      SELECT v1, v2,
             count(a_id) FILTER (WHERE NOT (b_id IS NULL AND at > migrated_at)) AS v1_count,
             count(b_id) AS v2_count
      FROM p GROUP BY v1, v2
    )
    SELECT kind, v1, v2, (array_agg(detail ORDER BY at))[1] AS detail, count(*) AS messages
    FROM issues GROUP BY kind, v1, v2
    UNION ALL
    SELECT 'message_count', v1, v2,
           format('v1 has %s messages from before the migration, v2 has %s copies',
                  v1_count, v2_count),
           abs(v1_count - v2_count)
    FROM counts WHERE v1_count <> v2_count
    """
)

# Live values are read through the conversation indexes, one conversation at a time within
# the one statement, so the plan does not depend on fresh statistics after a bulk run.
CONVERSATIONS = text(
    """
    SELECT x.kind, t.v1_conversation_id AS v1, t.v2_conversation_id AS v2, x.detail,
           0 AS messages
    FROM migration_tracking t
    LEFT JOIN chat_conversations c1 ON c1.id = t.v1_conversation_id
    LEFT JOIN v2_conversations c2 ON c2.id = t.v2_conversation_id
    LEFT JOIN LATERAL (
      SELECT count(*) AS n, max(m.created_at) AS last
      FROM v2_messages m WHERE m.conversation_id = c2.id
    ) live ON true
    LEFT JOIN LATERAL (
      SELECT count(*) AS n,
             coalesce(array_agg(d.document_id ORDER BY d.document_id)
                      FILTER (WHERE d.added_by = 'migration'), ARRAY[]::uuid[]) AS migrated
      FROM v2_conversation_documents d WHERE d.conversation_id = c2.id
    ) links ON true
    CROSS JOIN LATERAL (VALUES
      ('orphan', CASE WHEN c1.id IS NULL THEN
        format('the v1 original of v2 conversation %s no longer exists',
               coalesce(t.v2_conversation_id::text, '(none)')) END),
      ('missing_copy', CASE WHEN c2.id IS NULL THEN 'the v2 copy no longer exists' END),
      ('document_link', CASE WHEN c1.id IS NOT NULL AND c2.id IS NOT NULL
          AND links.migrated IS DISTINCT FROM
              (CASE WHEN c1.document_id IS NULL THEN ARRAY[]::uuid[]
                    ELSE ARRAY[c1.document_id] END) THEN
        format('v1 document %s, v2 migration links %s',
               coalesce(c1.document_id::text, 'none'), links.migrated) END),
      ('stored_count', CASE WHEN c2.id IS NOT NULL AND (
            c2.message_count IS DISTINCT FROM live.n
            OR c2.document_count IS DISTINCT FROM links.n
            OR (live.n > 0 AND c2.last_message_at IS DISTINCT FROM live.last)) THEN
        format('stored message_count %s, document_count %s, last_message_at %s; '
               'live %s, %s, %s', c2.message_count, c2.document_count,
               c2.last_message_at, live.n, links.n, live.last) END)
    ) AS x(kind, detail)
    WHERE t.migration_status = 'completed' AND x.detail IS NOT NULL
    """
)

ORDER = {kind: i for i, kind in enumerate(KINDS)}


def _problem(row: Mapping[str, object]) -> Problem:
    return Problem(
        kind=str(row["kind"]),
        v1_conversation_id=row["v1"],  # type: ignore[arg-type]
        v2_conversation_id=row["v2"],  # type: ignore[arg-type]
        detail=str(row["detail"]),
        messages=int(row["messages"]),  # type: ignore[call-overload]
    )


async def verify(db: Db) -> VerificationReport:
    """Check every completed migration visible to the transaction's role (run it as
    ``service_role`` to check them all)."""
    counts = {str(r["status"]): int(r["n"]) for r in await db.rows(STATUS_COUNTS)}
    not_migrated = counts.pop("not_migrated", 0)
    statuses = {status: counts.pop(status, 0) for status in STATUSES} | counts
    failed = tuple(
        Problem("failed", r["v1_conversation_id"], r["v2_conversation_id"], r["detail"])
        for r in await db.rows(FAILED)
    )
    problems = [_problem(r) for r in await db.rows(CONVERSATIONS)]
    problems += [_problem(r) for r in await db.rows(MESSAGES)]
    problems.sort(
        key=lambda p: (
            ORDER.get(p.kind, len(ORDER)),
            str(p.v1_conversation_id or ""),
            str(p.v2_conversation_id or ""),
        )
    )
    kinds: dict[str, int] = {}
    for problem in problems:
        kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
    return VerificationReport(
        statuses=statuses,
        not_migrated=not_migrated,
        failed=failed,
        problems=tuple(problems),
        kinds=kinds,
    )
