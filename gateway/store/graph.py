"""Where every field of the graph comes from: one declaration per object type and field.

For each object type: its table (read as the alias ``t``), whether anonymous viewers may read
it, and for each field the SQL over ``t`` that yields it — a scalar column with its null rule
(``coalesce`` where the graph says non-null), a to-one relation (the key of the row it points
to), an ordered to-many relation (an array of keys, in the list's order) or a keyset page of
another type's rows. The read engine (``schema.engine``) builds every statement from these and
renders each value by its GraphQL type; nothing else says what a field is made of.

``id``, ``databaseId`` (the key ``t.id``), ``source`` (the store of a ``V1``/``V2`` type) and
``__typename`` are the same for every type and need no declaration.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.store.keyset import Keyset, keyset_parts, newest_first_order


@dataclass(frozen=True)
class Scalar:
    """A leaf: ``sql`` over the row ``t``. With ``ids_of``, the value is a uuid (or an array of
    them) of that Node type, written as global ids."""

    sql: str
    ids_of: str | None = None


@dataclass(frozen=True)
class ToOne:
    """The row of ``target`` whose id is ``key`` (NULL: no row). With ``by``, ``target`` is
    chosen per row: ``by`` yields a store (``'v1'``/``'v2'``) and the target is its type."""

    target: str | dict[str, str]
    key: str
    by: str | None = None


@dataclass(frozen=True)
class ToMany:
    """Rows of ``target`` whose ids are in the uuid array ``keys``, in its order (ids without
    a visible row are left out)."""

    target: str
    keys: str


@dataclass(frozen=True)
class Order:
    """A keyset order over an instant that may be NULL, then the id."""

    instant: str  # a column of the target table
    newest_first: bool
    cursor: str  # the cursor's kind (``resolvers.ids.encode_cursor``)

    def sql(self, alias: str) -> str:
        if self.newest_first:
            return newest_first_order(f"{alias}.{self.instant}", f"{alias}.id")
        return f"{alias}.{self.instant}, {alias}.id"

    def parts(
        self, after: Keyset | None, alias: str
    ) -> list[tuple[str | None, dict[str, object]]]:
        """The rows after ``after`` as ranges of an index in this order, read one after the
        other (``gateway.store.keyset``): those with an instant, then those without."""
        return keyset_parts(
            after, f"{alias}.{self.instant}", f"{alias}.id", newest_first=self.newest_first
        )


@dataclass(frozen=True)
class Page:
    """A Relay connection of ``target`` rows whose ``parent`` column is this row's id."""

    target: str
    parent: str
    order: Order


Field = Scalar | ToOne | ToMany | Page


@dataclass(frozen=True)
class Entity:
    table: str
    fields: dict[str, Field]
    public: bool = False  # readable by anonymous viewers
    source: str | None = None  # 'v1' / 'v2' for the types of one store


def _document_ids(column: str) -> ToMany:
    return ToMany("Document", f"array_remove(ARRAY[{column}], NULL)")


_CONVERSATION: dict[str, Field] = {
    "isActive": Scalar("t.is_active"),
    "lastMessageAt": Scalar("t.last_message_at"),
    "createdAt": Scalar("t.created_at"),
    "owner": ToOne("Profile", "t.user_id"),
}
NEWEST_ACTIVITY = Order("last_message_at", newest_first=True, cursor="conversation")
OLDEST_MESSAGE = Order("created_at", newest_first=False, cursor="message")
NEWEST_PROJECT = Order("created_at", newest_first=True, cursor="project")
NEWEST_EVENT = Order("created_at", newest_first=True, cursor="event")
NEWEST_RESEARCH = Order("created_at", newest_first=True, cursor="research")

_RESEARCH: dict[str, Field] = {
    "addressInput": Scalar("t.address_input"),
    "city": ToOne("City", "t.city_id"),
    "zone": ToOne("Zone", "t.zone_id"),
    "createdAt": Scalar("t.created_at"),
}

_MESSAGE: dict[str, Field] = {
    "role": Scalar("t.role"),
    "text": Scalar("t.message"),
    "conversationTurn": Scalar("t.conversation_turn"),
    "createdAt": Scalar("t.created_at"),
    "metadata": Scalar("t.metadata"),
    # The profile of a USER message's user; null for ASSISTANT and SYSTEM (DESIGN §7).
    "author": ToOne("Profile", "CASE WHEN t.role = 'user' THEN t.user_id END"),
}

ENTITIES: dict[str, Entity] = {
    "V1Conversation": Entity(
        "chat_conversations",
        source="v1",
        fields={
            **_CONVERSATION,
            # Its document's title, else the first 80 characters of its first user message.
            "title": Scalar(
                "coalesce((SELECT d.title FROM documents d WHERE d.id = t.document_id), "
                "(SELECT left(m.message, 80) FROM chat_messages m WHERE m.conversation_id = t.id"
                " AND m.role = 'user' ORDER BY m.created_at, m.id LIMIT 1))"
            ),
            "messageCount": Scalar(
                "(SELECT count(*) FROM chat_messages m WHERE m.conversation_id = t.id)::int"
            ),
            "documents": _document_ids("t.document_id"),
            "messages": Page("V1Message", "conversation_id", OLDEST_MESSAGE),
            "document": ToOne("Document", "t.document_id"),
            "migration": ToOne(
                "Migration",
                "(SELECT mt.id FROM migration_tracking mt WHERE mt.v1_conversation_id = t.id)",
            ),
        },
    ),
    "V2Conversation": Entity(
        "v2_conversations",
        source="v2",
        fields={
            **_CONVERSATION,
            "title": Scalar("t.title"),
            "messageCount": Scalar("coalesce(t.message_count, 0)"),
            "documents": ToMany(
                "Document",
                "ARRAY(SELECT l.document_id FROM v2_conversation_documents l "
                "WHERE l.conversation_id = t.id ORDER BY l.added_at NULLS FIRST, l.document_id)",
            ),
            "messages": Page("V2Message", "conversation_id", OLDEST_MESSAGE),
            "conversationType": Scalar("t.conversation_type"),
            "contextMetadata": Scalar("t.context_metadata"),
            "archivedAt": Scalar("t.archived_at"),
            "documentCount": Scalar("coalesce(t.document_count, 0)"),
            "updatedAt": Scalar("t.updated_at"),
            "project": ToOne("Project", "t.project_id"),
            "migratedFrom": ToOne(
                "V1Conversation",
                "(SELECT mt.v1_conversation_id FROM migration_tracking mt "
                "WHERE mt.v2_conversation_id = t.id LIMIT 1)",
            ),
        },
    ),
    "V1Message": Entity(
        "chat_messages",
        source="v1",
        fields={
            **_MESSAGE,
            "replyTo": ToOne("V1Message", "t.reply_to_message_id"),
            "documents": _document_ids("t.document_id"),
        },
    ),
    "V2Message": Entity(
        "v2_messages",
        source="v2",
        fields={
            **_MESSAGE,
            "replyTo": ToOne("V2Message", "t.reply_to_message_id"),
            "documents": ToMany("Document", "t.referenced_documents"),
            "messageType": Scalar("t.message_type"),
            "intentDetected": Scalar("t.intent_detected"),
            "confidenceScore": Scalar("t.confidence_score"),
            "aiModelUsed": Scalar("t.ai_model_used"),
            "searchContext": Scalar("t.search_context"),
            "referencedZones": ToMany("Zone", "t.referenced_zones"),
            "referencedCities": ToMany("City", "t.referenced_cities"),
        },
    ),
    "Profile": Entity(
        "profiles",
        fields={
            "email": Scalar("t.email"),
            "fullName": Scalar("t.full_name"),
            "isAdmin": Scalar("coalesce(t.is_admin, false)"),
            "createdAt": Scalar("t.created_at"),
            # Every flag's decision for the viewer, on the viewer's own profile only.
            "features": ToMany(
                "FeatureValue",
                "CASE WHEN t.id = auth.uid() "
                "THEN ARRAY(SELECT f.id FROM feature_flags f ORDER BY f.key) "
                "ELSE CAST('{}' AS uuid[]) END",
            ),
        },
    ),
    "V1ResearchEntry": Entity(
        "research_history",
        source="v1",
        fields={**_RESEARCH},
    ),
    "V2ResearchEntry": Entity(
        "v2_research_history",
        source="v2",
        fields={
            **_RESEARCH,
            "searchIntent": Scalar("t.search_intent"),
            "geocodedAddress": Scalar("t.geocoded_address"),
            "geoLon": Scalar("t.geo_lon"),
            "geoLat": Scalar("t.geo_lat"),
            "success": Scalar("coalesce(t.success, true)"),
            "errorReason": Scalar("t.error_reason"),
            "documents": ToMany("Document", "coalesce(t.documents_found, CAST('{}' AS uuid[]))"),
            "conversation": ToOne("V2Conversation", "t.conversation_id"),
            "project": ToOne("Project", "t.project_id"),
        },
    ),
    "FeatureFlag": Entity(
        "feature_flags",
        fields={
            "key": Scalar("t.key"),
            "description": Scalar("t.description"),
            "enabled": Scalar("t.enabled"),
            "rolloutPercentage": Scalar("t.rollout_percentage"),
            "targetUserIds": Scalar("t.target_user_ids", ids_of="Profile"),
            "targetEmails": Scalar("t.target_emails"),
            "environments": Scalar("t.environments"),
            "createdAt": Scalar("t.created_at"),
            "updatedAt": Scalar("t.updated_at"),
        },
    ),
    # A flag as decided for the viewer (``feature_flag_decision``, revision 0007), keyed by the
    # flag's id.
    "FeatureValue": Entity(
        "(SELECT f.id, f.key, d.result, d.reason FROM feature_flags f CROSS JOIN LATERAL "
        "feature_flag_decision(f.key, auth.uid(), "
        "(SELECT p.email FROM profiles p WHERE p.id = auth.uid())) d)",
        fields={
            "key": Scalar("t.key"),
            "enabled": Scalar("t.result"),
            "reason": Scalar("t.reason"),
        },
    ),
    "Document": Entity(
        "documents",
        public=True,
        fields={
            "title": Scalar("t.title"),
            "url": Scalar("t.url"),
            "createdAt": Scalar("t.created_at"),
            "city": ToOne("City", "t.city_id"),
            "zoning": ToOne("Zoning", "t.zoning_id"),
            "zone": ToOne("Zone", "t.zone_id"),
            "typology": ToOne("Typology", "t.typology_id"),
        },
    ),
    "City": Entity(
        "cities",
        public=True,
        fields={
            "name": Scalar("t.name"),
            "inseeCode": Scalar("t.insee_code"),
            "zones": ToMany(
                "Zone",
                "ARRAY(SELECT z.id FROM zones z WHERE z.city_id = t.id ORDER BY z.code, z.id)",
            ),
        },
    ),
    "Zoning": Entity(
        "zonings",
        public=True,
        fields={"name": Scalar("t.name"), "city": ToOne("City", "t.city_id")},
    ),
    "Zone": Entity(
        "zones",
        public=True,
        fields={
            "code": Scalar("t.code"),
            "label": Scalar("t.label"),
            "city": ToOne("City", "t.city_id"),
            "zoning": ToOne("Zoning", "t.zoning_id"),
        },
    ),
    "Typology": Entity("typologies", public=True, fields={"name": Scalar("t.name")}),
    "Project": Entity(
        "v2_projects",
        fields={
            "name": Scalar("t.name"),
            "description": Scalar("t.description"),
            "projectType": Scalar("t.project_type"),
            "mainAddress": Scalar("t.main_address"),
            "geoLon": Scalar("t.geo_lon"),
            "geoLat": Scalar("t.geo_lat"),
            "color": Scalar("t.color"),
            "icon": Scalar("t.icon"),
            "starred": Scalar("coalesce(t.starred, false)"),
            "position": Scalar("t.position"),
            "status": Scalar("coalesce(t.status, 'draft')"),
            "pluAlertEnabled": Scalar("coalesce(t.plu_alert_enabled, false)"),
            "pluLastCheckAt": Scalar("t.plu_last_check_at"),
            "pluCheckFrequency": Scalar("t.plu_check_frequency"),
            "createdAt": Scalar("t.created_at"),
            "updatedAt": Scalar("t.updated_at"),
            "firstEditedAt": Scalar("t.first_edited_at"),
            "metadata": Scalar("t.metadata"),
            "owner": ToOne("Profile", "t.user_id"),
            "mainCity": ToOne("City", "t.main_city_id"),
            "mainZone": ToOne("Zone", "t.main_zone_id"),
            "documents": ToMany(
                "Document",
                "ARRAY(SELECT l.document_id FROM v2_project_documents l WHERE l.project_id = t.id"
                " ORDER BY coalesce(l.pinned, false) DESC, l.added_at, l.document_id)",
            ),
            "conversations": Page("V2Conversation", "project_id", NEWEST_ACTIVITY),
        },
    ),
    "Migration": Entity(
        "migration_tracking",
        fields={
            "status": Scalar("t.migration_status"),
            "migratedAt": Scalar("t.migrated_at"),
            "revertedAt": Scalar("t.reverted_at"),
            "errorMessage": Scalar("t.error_message"),
            "v1Conversation": ToOne("V1Conversation", "t.v1_conversation_id"),
            "v2Conversation": ToOne("V2Conversation", "t.v2_conversation_id"),
            "project": ToOne("Project", "t.v2_project_id"),
        },
    ),
    "ChatEvent": Entity(
        "analytics.chat_events",
        fields={
            # The store an event was written for (seed 000's analytics ``source`` tag).
            "source": Scalar("t.metadata->>'source'"),
            "modelName": Scalar("t.model_name"),
            "tokensTotal": Scalar("t.tokens_total"),
            "costTotal": Scalar("t.cost_total"),
            "metadata": Scalar("t.metadata"),
            "createdAt": Scalar("t.created_at"),
            "conversation": ToOne(
                {"v1": "V1Conversation", "v2": "V2Conversation"},
                "t.conversation_id",
                by="t.metadata->>'source'",
            ),
            "message": ToOne(
                {"v1": "V1Message", "v2": "V2Message"}, "t.message_id", by="t.metadata->>'source'"
            ),
            "document": ToOne("Document", "t.document_id"),
            "user": ToOne("Profile", "t.user_id"),
        },
    ),
}

# Mutation payloads: rows a mutation returns (a dict) rather than rows of a table. Their
# "columns" are keys of that dict; their relations read the objects the mutation wrote, as the
# viewer, like any other row.
# What a write to either store returns: the store written (``source``) and the rows' ids.
_WRITTEN_CONVERSATION = ToOne(
    {"v1": "V1Conversation", "v2": "V2Conversation"}, "conversation_id", by="source"
)
_WRITTEN_MESSAGE = ToOne({"v1": "V1Message", "v2": "V2Message"}, "message_id", by="source")

PAYLOADS: dict[str, Entity] = {
    "MigrateConversationPayload": Entity(
        "",
        fields={
            "migration": ToOne("Migration", "id"),
            "alreadyMigrated": Scalar("already_migrated"),
            "conversation": ToOne("V2Conversation", "v2_conversation_id"),
            "project": ToOne("Project", "v2_project_id"),
        },
    ),
    "SetFeatureFlagPayload": Entity("", fields={"flag": ToOne("FeatureFlag", "id")}),
    "CreateProjectPayload": Entity("", fields={"project": ToOne("Project", "id")}),
    "UpdateProjectPayload": Entity("", fields={"project": ToOne("Project", "id")}),
    "StartConversationPayload": Entity(
        "",
        fields={
            "conversation": _WRITTEN_CONVERSATION,
            "message": _WRITTEN_MESSAGE,
            "routedTo": Scalar("routed_to"),
        },
    ),
    "PostMessagePayload": Entity(
        "",
        fields={
            "message": _WRITTEN_MESSAGE,
            "conversation": _WRITTEN_CONVERSATION,
            "event": ToOne("ChatEvent", "event_id"),
        },
    ),
    "ArchiveConversationPayload": Entity("", fields={"conversation": _WRITTEN_CONVERSATION}),
    "AttachDocumentPayload": Entity(
        "", fields={"conversation": ToOne("V2Conversation", "conversation_id")}
    ),
    "DetachDocumentPayload": Entity(
        "", fields={"conversation": ToOne("V2Conversation", "conversation_id")}
    ),
    "PinProjectDocumentPayload": Entity("", fields={"project": ToOne("Project", "id")}),
    "RecordResearchPayload": Entity("", fields={"entry": ToOne("V2ResearchEntry", "id")}),
    "RevertMigrationPayload": Entity(
        "",
        fields={
            "migration": ToOne("Migration", "id"),
            "v1Conversation": ToOne("V1Conversation", "v1_conversation_id"),
        },
    ),
}

DECLARATIONS: dict[str, Entity] = {**ENTITIES, **PAYLOADS}
