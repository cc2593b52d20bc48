"""The clients of a soak: ``connections`` loops, each sending reads and writes one at a time,
every answer recorded (when sent, when answered, what came back) and every acknowledged write
kept, to be looked for in the database at the end."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from bench.graph.workloads import graphql_body

READ = "read"
POST = "postMessage"
START = "startConversation"
PROBE = "probe"
OK = "ok"

# The clients back off after a 503 (a postMessage is resent after the gateway's Retry-After,
# 1 s): one read every PROBE_S times when the gateway answers again.
PROBE_S = 0.05
PROBE_QUERY = "query Probe { conversations(first: 1) { totalCount } }"

POST_MESSAGE = """mutation Soak($input: PostMessageInput!) {
  postMessage(input: $input) { message { databaseId source conversationTurn } }
}"""
START_CONVERSATION = """mutation Soak($input: StartConversationInput!) {
  startConversation(input: $input) {
    routedTo conversation { databaseId source } message { databaseId source }
  }
}"""


@dataclass(frozen=True)
class Answer:
    sent: float  # seconds into the run
    answered: float
    operation: str
    outcome: str  # OK, or what went wrong: "503 SERVICE_UNAVAILABLE", "transport ReadError", …


@dataclass(frozen=True)
class Ack:
    """A row an acknowledged mutation (200, no errors) says it wrote."""

    table: str
    id: uuid.UUID


@dataclass(frozen=True)
class Target:
    conversation: str  # global id
    token: str  # its owner's


@dataclass
class Load:
    client: httpx.AsyncClient
    tokens: list[str]  # users' tokens (reads, startConversation)
    targets: list[Target]  # conversations of both stores to post into
    run_id: str
    started: float  # time.monotonic() at the start of the run
    stop_at: float  # seconds into the run
    read_body: bytes
    probe_body: bytes
    answers: list[Answer] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    written: dict[str, int] = field(default_factory=lambda: {POST: 0, START: 0})
    unacknowledged: int = 0  # writes given up on (a refusal, or the run ended first)
    sequence: int = 0

    def now(self) -> float:
        return time.monotonic() - self.started

    async def send(self, operation: str, body: bytes, token: str) -> tuple[str, Any]:
        sent = self.now()
        data: Any = None
        try:
            response = await self.client.post(
                "/graphql", content=body,
                headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            outcome = f"transport {type(exc).__name__}"
        else:
            outcome, data = judge(response)
        self.answers.append(Answer(sent, self.now(), operation, outcome))
        return outcome, data

    async def read(self, rng: random.Random) -> None:
        await self.send(READ, self.read_body, rng.choice(self.tokens))

    async def post_message(self, rng: random.Random) -> None:
        """A message with an idempotency key, sent again (same key) while the answer says the
        database was unavailable or the outcome unknown: the README's safe retry."""
        target = rng.choice(self.targets)
        n = self.next()
        body = graphql_body(POST_MESSAGE, {"input": {
            "conversationId": target.conversation,
            "text": f"{self.text_prefix()}post {n}",
            "idempotencyKey": f"soak-{self.run_id}-{n}",
        }})
        while True:
            outcome, data = await self.send(POST, body, target.token)
            if outcome == OK:
                message = data["postMessage"]["message"]
                self.acks.append(Ack(table_of("message", message["source"]),
                                     uuid.UUID(message["databaseId"])))
                self.written[POST] += 1
                return
            if not retryable(outcome) or self.now() >= self.stop_at:
                self.unacknowledged += 1
                return
            await asyncio.sleep(1.0)  # the gateway's Retry-After

    async def start_conversation(self, rng: random.Random) -> None:
        """Not safe to retry (README): sent once."""
        n = self.next()
        body = graphql_body(START_CONVERSATION, {"input": {
            "text": f"{self.text_prefix()}start {n}", "title": f"soak {n}",
        }})
        outcome, data = await self.send(START, body, rng.choice(self.tokens))
        if outcome != OK:
            self.unacknowledged += 1
            return
        payload = data["startConversation"]
        conversation, message = payload["conversation"], payload["message"]
        self.acks.append(Ack(table_of("conversation", conversation["source"]),
                             uuid.UUID(conversation["databaseId"])))
        self.acks.append(Ack(table_of("message", message["source"]),
                             uuid.UUID(message["databaseId"])))
        self.written[START] += 1

    def text_prefix(self) -> str:
        return f"soak {self.run_id} "

    def next(self) -> int:
        self.sequence += 1
        return self.sequence

    async def probe_loop(self) -> None:
        while self.now() < self.stop_at:
            await self.send(PROBE, self.probe_body, self.tokens[0])
            await asyncio.sleep(PROBE_S)

    async def client_loop(self, seed: int, reads: float, posts: float) -> None:
        rng = random.Random(seed)
        while self.now() < self.stop_at:
            draw = rng.random()
            if draw < reads:
                await self.read(rng)
            elif draw < reads + posts:
                await self.post_message(rng)
            else:
                await self.start_conversation(rng)


def judge(response: httpx.Response) -> tuple[str, Any]:
    """OK and the data, or what went wrong."""
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return f"{response.status_code} (not JSON)", None
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if response.status_code == 200 and not errors and payload.get("data"):
        return OK, payload["data"]
    if errors:
        extensions = errors[0].get("extensions") or {}
        outcome = f"{response.status_code} {extensions.get('code', '?')}"
        if extensions.get("outcome") == "unknown":
            outcome += " (outcome unknown)"
        return outcome, None
    return f"{response.status_code}", None


def retryable(outcome: str) -> bool:
    return (
        outcome.startswith(("503", "transport"))
        or "SERVICE_UNAVAILABLE" in outcome
        or "outcome unknown" in outcome
    )


def table_of(kind: str, source: str) -> str:
    v1 = source == "V1"
    if kind == "message":
        return "chat_messages" if v1 else "v2_messages"
    return "chat_conversations" if v1 else "v2_conversations"
