"""Deterministic demo data: French PLU reference data plus v1 and v2 chat histories.

Every row comes from one seeded ``random.Random`` and a fixed base instant, so two loads into
fresh databases are identical. Rows are built as plain tuples and sent with COPY, table by
table in foreign-key order, inside a single transaction. ``scale`` multiplies the users,
conversations and messages; the reference data (20 cities) stays the same.
"""

from __future__ import annotations

import json
import random
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import asyncpg

from gateway.db import async_url, connect_args
from gateway.tools.demo_content import (
    ADDED_BY,
    BASE,
    CITIES,
    CITY_DOCUMENTS,
    COLORS,
    COLUMNS,
    DEMO_ADMIN_ID,
    DEMO_OTHER_USER_ID,
    DEMO_USER_ID,
    FIRST_NAMES,
    FIXED_USERS,
    ICONS,
    LAST_NAMES,
    LOCK_KEY,
    MODELS,
    PROJECT_TYPES,
    SEED,
    STATUSES,
    STREETS,
    SYSTEM_PROMPT,
    TOPICS,
    TYPOLOGIES,
    WINDOW_SECONDS,
    ZONES,
    Row,
)


@dataclass(frozen=True)
class SeedSummary:
    """Rows inserted per table (schema-qualified outside ``public``) and the load time."""

    counts: dict[str, int]
    seconds: float


class Zone(NamedTuple):
    id: uuid.UUID
    code: str
    regulation: uuid.UUID


@dataclass
class City:
    id: uuid.UUID
    name: str
    insee: str
    lat: float
    lon: float
    zones: list[Zone] = field(default_factory=list)
    documents: list[uuid.UUID] = field(default_factory=list)


class Place(NamedTuple):
    city: City
    zone: Zone


class Chat(NamedTuple):
    id: uuid.UUID
    owner: uuid.UUID
    project: uuid.UUID
    place: Place
    model: str


class Turn(NamedTuple):
    id: uuid.UUID
    role: str
    text: str
    at: datetime
    number: int
    reply_to: uuid.UUID | None
    intent: str


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return ascii_text.lower().replace(" ", "-")


@dataclass
class Builder:
    scale: int
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    rows: dict[str, list[Row]] = field(default_factory=lambda: {t: [] for t in COLUMNS})
    cities: list[City] = field(default_factory=list)
    users: list[uuid.UUID] = field(default_factory=list)

    def new_id(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def later(self, at: datetime, max_seconds: int) -> datetime:
        return at + timedelta(
            seconds=self.rng.randint(5, max_seconds), microseconds=self.rng.randrange(1_000_000)
        )

    def start(self) -> datetime:
        return BASE + timedelta(seconds=self.rng.randrange(WINDOW_SECONDS))

    def place(self) -> Place:
        city = self.rng.choice(self.cities)
        return Place(city, self.rng.choice(city.zones))

    def address(self, place: Place) -> str:
        street = self.rng.choice(STREETS)
        return f"{self.rng.randint(1, 180)} {street}, {place.city.name}"

    def coordinate(self, degrees: float) -> Decimal:
        return Decimal(f"{degrees + self.rng.uniform(-0.02, 0.02):.7f}")

    def owners(self, n: int) -> list[uuid.UUID]:
        fixed = (
            [uuid.UUID(DEMO_USER_ID)] * max(4, n // 8)
            + [uuid.UUID(DEMO_OTHER_USER_ID)] * max(3, n // 12)
            + [uuid.UUID(DEMO_ADMIN_ID)] * max(2, n // 20)
        )
        owners = fixed + [self.rng.choice(self.users) for _ in range(n - len(fixed))]
        self.rng.shuffle(owners)
        return owners

    def build(self) -> dict[str, list[Row]]:
        self.add_reference()
        self.add_users()
        self.add_v1()
        self.add_v2()
        return self.rows

    def add_user(self, user_id: uuid.UUID, name: str, email: str, admin: bool) -> None:
        created = BASE - timedelta(days=self.rng.randint(30, 400), seconds=self.rng.random())
        self.rows["auth.users"].append((user_id, email))
        self.rows["profiles"].append((user_id, email, name, admin, created))

    def add_users(self) -> None:
        people = [(uuid.UUID(user_id), first, last) for user_id, first, last in FIXED_USERS]
        people += [
            (self.new_id(), self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES))
            for _ in range(20 * self.scale)
        ]
        seen: dict[str, int] = {}
        for user_id, first, last in people:
            local = _slug(f"{first}.{last}")
            seen[local] = seen.get(local, 0) + 1
            email = f"{local}{seen[local] if seen[local] > 1 else ''}@example.fr"
            self.add_user(user_id, f"{first} {last}", email, str(user_id) == DEMO_ADMIN_ID)
        self.users = [user_id for user_id, _, _ in people[len(FIXED_USERS):]]

    def add_reference(self) -> None:
        typologies = [self.new_id() for _ in TYPOLOGIES]
        self.rows["typologies"].extend(zip(typologies, TYPOLOGIES, strict=True))
        for name, insee, zoning_name, lat, lon in CITIES:
            city = City(self.new_id(), name, insee, lat, lon)
            zoning = self.new_id()
            self.rows["cities"].append((city.id, name, insee))
            self.rows["zonings"].append((zoning, city.id, zoning_name))
            for code, label in sorted(self.rng.sample(ZONES, self.rng.randint(6, 10))):
                zone = Zone(self.new_id(), code, self.new_id())
                city.zones.append(zone)
                self.rows["zones"].append((zone.id, zoning, city.id, code, label))
                regulation = (typologies[0], f"Règlement de la zone {code}", code)
                self.add_document(city, zoning, zone, regulation)
            for kind, title, file in CITY_DOCUMENTS:
                self.add_document(city, zoning, None, (typologies[kind], title, file))
            self.cities.append(city)

    def add_document(
        self, city: City, zoning: uuid.UUID, zone: Zone | None, kind: tuple[uuid.UUID, str, str]
    ) -> None:
        typology, title, file = kind
        doc = zone.regulation if zone else self.new_id()
        url = f"https://docs.mwplu.example/{city.insee}/{file}.pdf"
        created = BASE - timedelta(days=self.rng.randint(60, 900))
        self.rows["documents"].append((doc, f"{title} — {city.name}", url, city.id, zoning,
                                       zone.id if zone else None, typology, created))
        city.documents.append(doc)

    def dialogue(self, start: datetime, place: Place) -> list[Turn]:
        rng, turns = self.rng, []
        if rng.random() < 0.12:
            text = SYSTEM_PROMPT.format(city=place.city.name)
            turns.append(Turn(self.new_id(), "system", text, start, 1, None, "system"))
        at, topic = start, TOPICS[0]
        for index in range(round(rng.triangular(4, 12, 10))):
            at = self.later(at, 900) if turns else at
            role = "user" if index % 2 == 0 else "assistant"
            if role == "user":
                topic = rng.choice(TOPICS)
            values = {"zone": place.zone.code, "city": place.city.name, "n": rng.randint(3, 15),
                      "p": rng.randrange(20, 65, 5), "k": rng.randint(1, 3)}
            text = (topic[2] if role == "user" else topic[3]).format(**values)
            turns.append(Turn(self.new_id(), role, text, at, len(turns) + 1,
                              self.reply_target(turns, role), topic[0]))
        return turns

    def reply_target(self, turns: list[Turn], role: str) -> uuid.UUID | None:
        if role == "assistant" and self.rng.random() < 0.5:
            return turns[-1].id
        answers = [t.id for t in turns[:-1] if t.role == "assistant"]
        if role == "user" and answers and self.rng.random() < 0.25:
            return self.rng.choice(answers)
        return None

    def event(self, conversation: uuid.UUID, turn: Turn, owner: uuid.UUID,
              document: uuid.UUID | None, model: str, source: str) -> int:
        tokens = self.rng.randint(300, 4000)
        cost = (MODELS[model] * tokens).quantize(Decimal("0.000001"))
        self.rows["analytics.chat_events"].append(
            (self.new_id(), conversation, turn.id, document, owner, model, tokens, cost,
             json.dumps({"source": source}), turn.at))
        return tokens

    def add_v1(self) -> None:
        for index, owner in enumerate(self.owners(60 * self.scale)):
            place = self.place()
            document = place.zone.regulation if index % 2 == 0 else None
            self.add_v1_conversation(owner, place, document, self.start())

    def add_v1_conversation(self, owner: uuid.UUID, place: Place,
                            document: uuid.UUID | None, start: datetime) -> None:
        conversation, model = self.new_id(), self.rng.choice(list(MODELS))
        turns = self.dialogue(start, place)
        self.rows["chat_conversations"].append(
            (conversation, owner, document, self.rng.random() > 0.15, turns[-1].at, start))
        for turn in turns:
            doc = document or (place.zone.regulation if self.rng.random() < 0.2 else None)
            meta: dict[str, Any] = {"client": "web"}
            if turn.role == "assistant":
                meta = {"model": model,
                        "tokens": self.event(conversation, turn, owner, doc, model, "v1")}
            self.rows["chat_messages"].append(
                (turn.id, conversation, owner, turn.role, turn.text, doc, turn.number,
                 turn.reply_to, json.dumps(meta), turn.at))
        if self.rng.random() < 0.5:
            self.rows["research_history"].append(
                (self.new_id(), owner, self.address(place), place.city.id, place.zone.id,
                 start - timedelta(minutes=self.rng.randint(1, 30))))

    def add_v2(self) -> None:
        positions: dict[uuid.UUID, int] = {}
        for index, owner in enumerate(self.owners(30 * self.scale)):
            positions[owner] = positions.get(owner, 0) + 1
            starts = sorted(self.start() for _ in range(1 + index % 3))
            self.add_project(owner, positions[owner], self.place(), starts)

    def add_project(
        self, owner: uuid.UUID, position: int, place: Place, starts: list[datetime]
    ) -> None:
        rng, project = self.rng, self.new_id()
        created = starts[0] - timedelta(hours=rng.randint(1, 72), seconds=rng.random())
        kind = rng.choice(list(PROJECT_TYPES))
        address = self.address(place)
        name = f"{PROJECT_TYPES[kind]} — {place.city.name}" if rng.random() < 0.85 else None
        documents: dict[uuid.UUID, datetime] = {}
        ends = [
            self.add_v2_conversation(
                Chat(self.new_id(), owner, project, place, rng.choice(list(MODELS))),
                start,
                documents,
            )
            for start in starts
        ]
        alert = rng.random() < 0.3
        self.rows["v2_projects"].append(
            (project, owner, name, f"Projet situé au {address}.", kind, address, place.city.id,
             place.zone.id, self.coordinate(place.city.lon), self.coordinate(place.city.lat),
             rng.choice(COLORS), rng.choice(ICONS), rng.random() < 0.25, position,
             rng.choice(STATUSES), alert, max(ends) if alert else None,
             rng.choice(("daily", "weekly", "monthly")), created, max(ends),
             self.later(created, 3600), json.dumps({"surface_m2": rng.randint(40, 400)})))
        for document, added in documents.items():
            self.rows["v2_project_documents"].append(
                (self.new_id(), project, document, rng.random() < 0.3, added,
                 "À vérifier avec l'architecte" if rng.random() < 0.2 else None))

    def add_v2_conversation(self, chat: Chat, start: datetime,
                            project_docs: dict[uuid.UUID, datetime]) -> datetime:
        rng, place = self.rng, chat.place
        turns = self.dialogue(start, place)
        documents = rng.sample([place.zone.regulation, *place.city.documents[-4:]],
                               rng.randint(0, 4))
        usage = self.add_v2_messages(chat, turns, documents)
        self.add_conversation_documents(chat.id, documents, usage, start)
        for doc in documents:
            project_docs.setdefault(doc, start)
        title = rng.choice(TOPICS)[1].format(zone=place.zone.code, city=place.city.name)
        context = {"city": place.city.insee, "zone": place.zone.code, "model": chat.model}
        kind = rng.choice(("address_analysis", "multi_zone", "general"))
        active, end = rng.random() > 0.15, turns[-1].at
        self.rows["v2_conversations"].append(
            (chat.id, chat.owner, chat.project, kind, title, json.dumps(context), active,
             None if active else end + timedelta(days=2), end, len(turns), len(documents),
             start, end))
        return end

    def add_v2_messages(self, chat: Chat, turns: list[Turn],
                        documents: list[uuid.UUID]) -> dict[uuid.UUID, list[datetime]]:
        usage: dict[uuid.UUID, list[datetime]] = {doc: [] for doc in documents}
        for turn in turns:
            if turn.role == "assistant":
                refs = self.rng.sample(documents, min(len(documents), self.rng.randint(1, 2)))
                for doc in refs:
                    usage[doc].append(turn.at)
                row = self.assistant_row(chat, turn, refs)
            else:
                row = self.user_row(chat, turn)
            self.rows["v2_messages"].append(
                (turn.id, chat.id, chat.owner, turn.role, turn.text, *row, turn.number,
                 turn.reply_to, json.dumps({"client": "web"}), turn.at))
        return usage

    def assistant_row(self, chat: Chat, turn: Turn, refs: list[uuid.UUID]) -> Row:
        document = refs[0] if refs else None
        self.event(chat.id, turn, chat.owner, document, chat.model, "v2")
        kind = self.rng.choice(("text", "document_summary", "comparison", "clarification"))
        confidence = Decimal(self.rng.randint(55, 99)) / 100
        return (kind, refs or None, [chat.place.zone.id], [chat.place.city.id], None,
                turn.intent, confidence, chat.model)

    def user_row(self, chat: Chat, turn: Turn) -> Row:
        if turn.role == "system":
            return ("text", None, None, None, None, None, None, None)
        if self.rng.random() > 0.2:
            return ("text", None, None, None, None, turn.intent, None, None)
        place, address = chat.place, self.address(chat.place)
        found = self.rng.random() > 0.1
        self.rows["v2_research_history"].append(
            (self.new_id(), chat.owner, chat.id, turn.id, chat.project, address, turn.intent,
             f"{address}, France" if found else None, place.city.id,
             place.zone.id if found else None, self.coordinate(place.city.lon),
             self.coordinate(place.city.lat), [place.zone.regulation] if found else None,
             found, None if found else "Adresse introuvable", turn.at))
        search = json.dumps({"address": address, "city": place.city.insee})
        return ("address_search", None, None, [place.city.id], search, turn.intent, None, None)

    def add_conversation_documents(self, conversation: uuid.UUID, documents: list[uuid.UUID],
                                   usage: dict[uuid.UUID, list[datetime]],
                                   start: datetime) -> None:
        for doc in documents:
            used = usage[doc]
            score = Decimal(self.rng.randint(40, 99)) / 100
            trigger = json.dumps({"intent": self.rng.choice(TOPICS)[0]})
            self.rows["v2_conversation_documents"].append(
                (self.new_id(), conversation, doc, start, self.rng.choice(ADDED_BY), score,
                 len(used), max(used) if used else None, trigger))


def _connect_args(url: str) -> dict[str, Any]:
    parsed = async_url(url)
    return {
        "user": parsed.username,
        "password": parsed.password,
        "host": parsed.host,
        "port": parsed.port,
        "database": parsed.database,
        **connect_args(url),  # a socket directory in ?host= replaces the host
    }


async def _is_loaded(conn: Any) -> bool:
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM profiles WHERE id = $1)", uuid.UUID(DEMO_USER_ID)
    )
    return bool(found)


async def demo_loaded(url: str) -> bool:
    """True when the demo profile (``DEMO_USER_ID``) already exists."""
    conn = await asyncpg.connect(**_connect_args(url))
    try:
        return await _is_loaded(conn)
    finally:
        await conn.close()


async def _copy_all(conn: Any, rows: dict[str, list[Row]],
                    progress: Callable[[str, int], None] | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table, columns in COLUMNS.items():
        schema, _, name = table.rpartition(".")
        await conn.copy_records_to_table(
            name, records=rows[table], columns=columns, schema_name=schema or "public"
        )
        counts[table] = len(rows[table])
        if progress is not None:
            progress(table, counts[table])
    return counts


# New conversations of the demo user, and of half the other users, go to v2 (DESIGN §9); the
# rest, like the demo's other user, to v1 (``mwplu-gateway flags check v2_conversations``).
ROLLOUT = (
    "UPDATE feature_flags SET enabled = true, rollout_percentage = 50, "
    "target_user_ids = ARRAY[CAST($1 AS uuid)], updated_at = now() "
    "WHERE key = 'v2_conversations'"
)


async def seed_demo(
    url: str, *, scale: int = 1, progress: Callable[[str, int], None] | None = None
) -> SeedSummary:
    """Load the demo data set in one transaction; refuse when it is already there."""
    if scale < 1:
        raise ValueError("scale must be at least 1")
    began = time.perf_counter()
    conn = await asyncpg.connect(**_connect_args(url))
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
            if await _is_loaded(conn):
                raise RuntimeError("demo data already loaded")
            counts = await _copy_all(conn, Builder(scale).build(), progress)
            await conn.execute(ROLLOUT, DEMO_USER_ID)
    finally:
        await conn.close()
    return SeedSummary(counts=counts, seconds=time.perf_counter() - began)
