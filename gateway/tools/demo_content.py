"""The demo's fixed content: French PLU cities, zones and documents, chat topics, people,
and the COPY column order of every table it fills."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

DEMO_USER_ID: str = "00000000-0000-4000-8000-000000000001"
DEMO_OTHER_USER_ID: str = "00000000-0000-4000-8000-000000000002"
DEMO_ADMIN_ID: str = "00000000-0000-4000-8000-0000000000ad"

SEED = 20260105
BASE = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
WINDOW_SECONDS = 120 * 24 * 3600
LOCK_KEY = 0x6D77706C75  # pg_advisory_xact_lock key shared by concurrent loaders

Row = tuple[Any, ...]

CITIES = (  # name, INSEE code, zoning, latitude, longitude
    ("Paris", "75056", "PLU de Paris", 48.8566, 2.3522),
    ("Lyon", "69123", "PLU-H de la Métropole de Lyon", 45.7640, 4.8357),
    ("Marseille", "13055", "PLUi Aix-Marseille-Provence", 43.2965, 5.3698),
    ("Bordeaux", "33063", "PLU 3.1 de Bordeaux Métropole", 44.8378, -0.5792),
    ("Nantes", "44109", "PLUm de Nantes Métropole", 47.2184, -1.5536),
    ("Lille", "59350", "PLU2 de la Métropole Européenne de Lille", 50.6292, 3.0573),
    ("Toulouse", "31555", "PLUi-H de Toulouse Métropole", 43.6047, 1.4442),
    ("Rennes", "35238", "PLUi de Rennes Métropole", 48.1173, -1.6778),
    ("Strasbourg", "67482", "PLUi de l'Eurométropole de Strasbourg", 48.5734, 7.7521),
    ("Montpellier", "34172", "PLU de Montpellier", 43.6108, 3.8767),
    ("Nice", "06088", "PLUm Nice Côte d'Azur", 43.7102, 7.2620),
    ("Grenoble", "38185", "PLUi Grenoble-Alpes Métropole", 45.1885, 5.7245),
    ("Dijon", "21231", "PLUi-HD Dijon Métropole", 47.3220, 5.0415),
    ("Angers", "49007", "PLUi Angers Loire Métropole", 47.4784, -0.5632),
    ("Annecy", "74010", "PLU d'Annecy", 45.8992, 6.1294),
    ("Tours", "37261", "PLU de Tours", 47.3941, 0.6848),
    ("Reims", "51454", "PLU de Reims", 49.2583, 4.0317),
    ("Le Havre", "76351", "PLU du Havre", 49.4944, 0.1079),
    ("Clermont-Ferrand", "63113", "PLU de Clermont-Ferrand", 45.7772, 3.0870),
    ("Brest", "29019", "PLU de Brest métropole", 48.3904, -4.4861),
)
ZONES = (
    ("UA", "Zone urbaine centrale"),
    ("UB", "Zone urbaine mixte dense"),
    ("UC", "Zone urbaine résidentielle"),
    ("UD", "Zone urbaine pavillonnaire"),
    ("UE", "Zone urbaine d'activités économiques"),
    ("AU", "Zone à urbaniser"),
    ("AUa", "Zone à urbaniser à court terme"),
    ("N", "Zone naturelle"),
    ("Nj", "Zone naturelle de jardins"),
    ("A", "Zone agricole"),
)
TYPOLOGIES = ("Règlement écrit", "Plan de zonage", "OAP", "Annexes sanitaires", "PADD")
CITY_DOCUMENTS = (  # typology index, title prefix, file name
    (1, "Plan de zonage", "zonage"),
    (2, "Orientations d'aménagement et de programmation", "oap"),
    (3, "Annexes sanitaires", "annexes-sanitaires"),
    (4, "Projet d'aménagement et de développement durables", "padd"),
)
TOPICS = (  # intent, conversation title, question, answer
    ("hauteur", "Hauteur maximale en zone {zone}",
     "Quelle est la hauteur maximale autorisée en zone {zone} à {city} ?",
     "D'après le règlement de la zone {zone}, la hauteur maximale est de {n} m à l'égout du toit."),
    ("emprise_au_sol", "Emprise au sol — zone {zone}",
     "Quelle emprise au sol est permise pour une extension en zone {zone} ?",
     "L'emprise au sol des constructions ne peut excéder {p} % de la superficie du terrain."),
    ("recul_voie", "Recul par rapport à la voie",
     "Quel recul par rapport à la voie dois-je respecter à {city} ?",
     "Les constructions s'implantent avec un recul minimal de {n} m par rapport à l'alignement."),
    ("stationnement", "Stationnement à {city}",
     "Combien de places de stationnement faut-il prévoir pour un logement neuf ?",
     "Le PLU de {city} impose {k} place(s) de stationnement par logement et un local vélos."),
    ("limites_separatives", "Limites séparatives",
     "Puis-je construire en limite séparative en zone {zone} ?",
     "En zone {zone}, l'implantation en limite est admise si la hauteur n'excède pas {n} m."),
    ("piscine", "Piscine en zone {zone}",
     "Une piscine est-elle autorisée en zone {zone} ?",
     "Oui, à condition de respecter un retrait de {k} m des limites et {p} % de pleine terre."),
    ("clotures", "Clôtures et portail",
     "Quelle hauteur de clôture est autorisée en façade à {city} ?",
     "Les clôtures sur rue sont limitées à 1,{n} m, dont un mur bahut de 0,{k}0 m au plus."),
    ("pleine_terre", "Coefficient de pleine terre",
     "Le coefficient de pleine terre s'applique-t-il à ma parcelle en zone {zone} ?",
     "Oui : au moins {p} % du terrain doit rester en pleine terre, hors stationnements."),
)
SYSTEM_PROMPT = "Tu es l'assistant MWPLU : réponds à partir des documents d'urbanisme de {city}."
MODELS = {
    "gpt-4o-mini": Decimal("0.0000006"),
    "claude-3-5-sonnet": Decimal("0.000015"),
    "mistral-large": Decimal("0.000006"),
}
FIXED_USERS = (
    (DEMO_USER_ID, "Camille", "Martin"),
    (DEMO_OTHER_USER_ID, "Julien", "Bernard"),
    (DEMO_ADMIN_ID, "Hélène", "Rousseau"),
)
FIRST_NAMES = (
    "Camille", "Julien", "Hélène", "Léa", "Hugo", "Chloé", "Louis", "Manon", "Gabriel", "Inès",
    "Arthur", "Jade", "Lucas", "Zoé", "Théo", "Emma", "Nathan", "Sarah", "Mathis", "Élise",
)
LAST_NAMES = (
    "Martin", "Bernard", "Rousseau", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
    "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand",
    "Roux", "Vincent", "Fournier", "Morel", "Girard", "André", "Mercier", "Dupont", "Lambert",
    "Bonnet", "François", "Martinez", "Faure", "Chevalier",
)
STREETS = (
    "rue de la République", "avenue Jean Jaurès", "boulevard Victor Hugo", "rue Pasteur",
    "place de la Mairie", "chemin des Vignes", "allée des Tilleuls", "rue du Moulin",
)
PROJECT_TYPES = {
    "construction": "Maison individuelle", "extension": "Extension maison",
    "renovation": "Rénovation de façade", "amenagement": "Aménagement des combles",
    "lotissement": "Lotissement", "other": "Étude de faisabilité",
}
STATUSES = ("draft", "active", "active", "completed", "archived")
COLORS = ("#6B7280", "#2563EB", "#16A34A", "#D97706", "#DC2626", "#7C3AED")
ICONS = ("📁", "🏠", "🏗️", "🌳", "🏢")
ADDED_BY = ("user", "ai_auto", "ai_suggested", "address_search", "migration")

_COLUMN_LISTS = {  # COPY column order per table, in foreign-key order
    "auth.users": "id email",
    "profiles": "id email full_name is_admin created_at",
    "cities": "id name insee_code",
    "zonings": "id city_id name",
    "zones": "id zoning_id city_id code label",
    "typologies": "id name",
    "documents": "id title url city_id zoning_id zone_id typology_id created_at",
    "chat_conversations": "id user_id document_id is_active last_message_at created_at",
    "chat_messages": "id conversation_id user_id role message document_id conversation_turn "
                     "reply_to_message_id metadata created_at",
    "research_history": "id user_id address_input city_id zone_id created_at",
    "v2_projects": "id user_id name description project_type main_address main_city_id "
                   "main_zone_id geo_lon geo_lat color icon starred position status "
                   "plu_alert_enabled plu_last_check_at plu_check_frequency created_at updated_at "
                   "first_edited_at metadata",
    "v2_conversations": "id user_id project_id conversation_type title context_metadata is_active "
                        "archived_at last_message_at message_count document_count created_at "
                        "updated_at",
    "v2_messages": "id conversation_id user_id role message message_type referenced_documents "
                   "referenced_zones referenced_cities search_context intent_detected "
                   "confidence_score ai_model_used conversation_turn reply_to_message_id metadata "
                   "created_at",
    "v2_conversation_documents": "id conversation_id document_id added_at added_by "
                                 "relevance_score usage_count last_referenced_at trigger_context",
    "v2_project_documents": "id project_id document_id pinned added_at notes",
    "v2_research_history": "id user_id conversation_id message_id project_id address_input "
                           "search_intent geocoded_address city_id zone_id geo_lon geo_lat "
                           "documents_found success error_reason created_at",
    "analytics.chat_events": "id conversation_id message_id document_id user_id model_name "
                             "tokens_total cost_total metadata created_at",
}
COLUMNS: dict[str, tuple[str, ...]] = {t: tuple(c.split()) for t, c in _COLUMN_LISTS.items()}
