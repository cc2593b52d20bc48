"""Documents linked to v2 conversations and projects (as the viewer: the links' policies let
the owner of the parent write them). A conversation's ``document_count`` is set to the live
count under the conversation's row lock, so concurrent links cannot skew it."""

from __future__ import annotations

from uuid import UUID

from gateway.db import Db

_COUNT = (
    "UPDATE v2_conversations SET document_count = "
    "(SELECT count(*) FROM v2_conversation_documents d "
    "WHERE d.conversation_id = CAST(:conversation AS uuid))"
    " {change}, updated_at = now() WHERE id = CAST(:conversation AS uuid) RETURNING id"
)


async def lock_conversation(db: Db, conversation_id: UUID) -> bool:
    """Lock a v2 conversation the viewer may change (False: none)."""
    rows = await db.fetch(
        "SELECT 1 FROM v2_conversations WHERE id = CAST(:id AS uuid) FOR UPDATE",
        {"id": conversation_id},
    )
    return bool(rows)


async def attach(
    db: Db, conversation_id: UUID, document_id: UUID, relevance: float | None
) -> None:
    """Link the document (``added_by`` user); a link already there is left as it is."""
    await db.fetch(
        "WITH added AS (INSERT INTO v2_conversation_documents "
        "(conversation_id, document_id, added_by, relevance_score) "
        "VALUES (CAST(:conversation AS uuid), CAST(:document AS uuid), 'user', "
        "CAST(:relevance AS numeric)) "
        "ON CONFLICT (conversation_id, document_id) DO NOTHING RETURNING 1) "
        + _COUNT.format(change="+ (SELECT count(*) FROM added)"),
        {"conversation": conversation_id, "document": document_id, "relevance": relevance},
    )


async def detach(db: Db, conversation_id: UUID, document_id: UUID) -> None:
    await db.fetch(
        "WITH removed AS (DELETE FROM v2_conversation_documents "
        "WHERE conversation_id = CAST(:conversation AS uuid) "
        "AND document_id = CAST(:document AS uuid) RETURNING 1) "
        + _COUNT.format(change="- (SELECT count(*) FROM removed)"),
        {"conversation": conversation_id, "document": document_id},
    )


async def pin(
    db: Db, project_id: UUID, document_id: UUID, *, pinned: bool, notes: str | None,
    set_notes: bool,
) -> None:
    """Link the document to the project (or change its link): ``pinned``, and ``notes`` when
    ``set_notes``."""
    notes_update = ", notes = EXCLUDED.notes" if set_notes else ""
    await db.fetch(
        "INSERT INTO v2_project_documents (project_id, document_id, pinned, notes) "
        "VALUES (CAST(:project AS uuid), CAST(:document AS uuid), :pinned, CAST(:notes AS text)) "
        f"ON CONFLICT (project_id, document_id) DO UPDATE SET pinned = EXCLUDED.pinned"
        f"{notes_update}",
        {"project": project_id, "document": document_id, "pinned": pinned, "notes": notes},
    )
