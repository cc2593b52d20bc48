"""The media types of GraphQL over HTTP (the GraphQL-over-HTTP specification) and the choice
of one from a request's ``Accept`` header.

``application/graphql-response+json`` is answered to a client that lists it: a request refused
before execution (not a well-formed GraphQL-over-HTTP request, a document that does not parse
or validate, variables that do not coerce, an operation that cannot be determined) is then a
4xx with no ``data`` entry. ``application/json`` (no ``Accept``, ``*/*``, ``application/*``, or
listed first) keeps the legacy answers: ``200`` with ``data: null`` for those refusals.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaType:
    name: str
    # The spec's rules for application/graphql-response+json: a response without a ``data``
    # entry is a 4xx or a 5xx, and every refusal before execution has no ``data`` entry.
    strict: bool

    @property
    def content_type(self) -> str:
        return f"{self.name}; charset=utf-8"


GRAPHQL_RESPONSE_JSON = MediaType("application/graphql-response+json", strict=True)
APPLICATION_JSON = MediaType("application/json", strict=False)
SUPPORTED = (GRAPHQL_RESPONSE_JSON, APPLICATION_JSON)
UTF8 = frozenset({"utf-8", "utf8"})

# How closely a media range names a type: */*, type/*, type/subtype.
ANY, SUBTYPES, EXACT = 1, 2, 3


@dataclass(frozen=True)
class MediaRange:
    type: str
    subtype: str
    q: float
    params: dict[str, str]

    def level(self, name: str) -> int | None:
        """How specifically this range matches ``name`` (None: it does not)."""
        kind, sub = name.split("/", 1)
        charset = self.params.get("charset")
        if charset is not None and charset not in UTF8:
            return None  # the gateway answers in UTF-8 only
        if self.type == "*":
            return ANY if self.subtype == "*" else None
        if self.type != kind:
            return None
        if self.subtype == "*":
            return SUBTYPES
        return EXACT if self.subtype == sub else None


def parse_accept(header: str) -> list[MediaRange]:
    """The media ranges of an ``Accept`` header (RFC 9110 §12.5.1); malformed ones are left
    out."""
    ranges: list[MediaRange] = []
    for part in header.split(","):
        pieces = part.split(";")
        kind, slash, sub = pieces[0].strip().lower().partition("/")
        if not slash or not kind or not sub or "/" in sub:
            continue
        q = 1.0
        params: dict[str, str] = {}
        valid = True
        for piece in pieces[1:]:
            key, equals, value = piece.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"').lower()
            if not equals or not key:
                continue
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    valid = False
                    break
                if not 0.0 <= q <= 1.0:
                    valid = False
                    break
                break  # what follows q is accept-ext, not media type parameters
            params[key] = value
        if valid:
            ranges.append(MediaRange(kind, sub, q, params))
    return ranges


def negotiate(accept: str | None) -> MediaType | None:
    """The media type to answer with, or None when ``accept`` lists none the gateway serves
    (the spec then recommends ``406 Not Acceptable``).

    No ``Accept`` is ``application/json`` (the legacy default, as the spec's watershed rules
    keep it for clients that send none). Otherwise the type with the highest ``q`` wins, each
    type taking the ``q`` of the most specific range that matches it; on a tie the type named
    exactly wins over one matched by a wildcard, and ``application/graphql-response+json``
    over ``application/json`` when both are named; a wildcard alone (``*/*``,
    ``application/*``) is ``application/json``.
    """
    if accept is None or not accept.strip():
        return APPLICATION_JSON
    ranges = parse_accept(accept)
    best: MediaType | None = None
    best_key: tuple[float, int, bool] | None = None
    for media in SUPPORTED:
        matches = [(level, len(r.params), r.q) for r in ranges if (level := r.level(media.name))]
        if not matches:
            continue
        level, _, q = max(matches)
        if q <= 0:
            continue
        key = (q, level, (media is GRAPHQL_RESPONSE_JSON) == (level == EXACT))
        if best_key is None or key > best_key:
            best, best_key = media, key
    return best
