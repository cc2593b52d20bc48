"""Persisted operations (DESIGN §11): Apollo's automatic persisted queries, and a trusted
documents manifest that, when configured, is the only set of operations the gateway runs.

A client sends ``extensions.persistedQuery = {version: 1, sha256Hash}``, with the query the
first time (it is checked against the hash and remembered, up to ``CACHE_SIZE`` per worker)
and without it afterwards. With ``GATEWAY_TRUSTED_DOCUMENTS`` (``{hash: document}``, built by
``mwplu-gateway trusted-documents``) nothing is registered: a document runs only when its hash
is in the manifest, so a production graph answers its known clients and nothing else.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson

from gateway.errors import BadUserInput, GatewayError

CACHE_SIZE = 1000


class PersistedQueryNotFound(GatewayError):
    code = "PERSISTED_QUERY_NOT_FOUND"


class PersistedQueryNotAllowed(GatewayError):
    code = "PERSISTED_QUERY_NOT_ALLOWED"


class ManifestError(ValueError):
    """The trusted documents file cannot be used (the gateway does not start)."""


def sha256_hex(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def load_manifest(path: Path) -> dict[str, str]:
    """``{sha256 hex: document}``, each hash checked against its document."""
    try:
        raw = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ManifestError(f"trusted documents {path}: {exc}") from None
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise ManifestError(f"trusted documents {path}: expected {{sha256: document}}")
    wrong = [k for k, v in raw.items() if sha256_hex(v) != k.lower()]
    if wrong:
        raise ManifestError(f"trusted documents {path}: hash {wrong[0]} is not its document's")
    return {k.lower(): v for k, v in raw.items()}


class PersistedDocuments:
    def __init__(self, manifest: dict[str, str] | None = None) -> None:
        self.manifest = manifest
        self._remembered: OrderedDict[str, str] = OrderedDict()

    def resolve(self, query: str | None, extensions: dict[str, Any] | None) -> str:
        """The document to run for a request's ``query`` and ``extensions``."""
        persisted = (extensions or {}).get("persistedQuery")
        digest = None
        if persisted is not None:
            if (
                not isinstance(persisted, dict)
                or persisted.get("version") != 1
                or not isinstance(persisted.get("sha256Hash"), str)
            ):
                raise BadUserInput("persistedQuery must be {version: 1, sha256Hash: string}")
            digest = persisted["sha256Hash"].lower()
            if query is None:
                return self._known(digest)
            if sha256_hex(query) != digest:
                raise BadUserInput("the query's sha256 is not persistedQuery.sha256Hash")
        if query is None:
            raise BadUserInput("the body must carry a 'query' string")
        if self.manifest is not None:
            if (digest or sha256_hex(query)) not in self.manifest:
                raise PersistedQueryNotAllowed("this operation is not a trusted document")
        elif digest is not None:
            self._remembered[digest] = query
            self._remembered.move_to_end(digest)
            if len(self._remembered) > CACHE_SIZE:
                self._remembered.popitem(last=False)
        return query

    def _known(self, digest: str) -> str:
        if self.manifest is not None:
            document = self.manifest.get(digest)
            if document is None:
                raise PersistedQueryNotAllowed("this operation is not a trusted document")
            return document
        document = self._remembered.get(digest)
        if document is None:
            raise PersistedQueryNotFound("PersistedQueryNotFound")
        self._remembered.move_to_end(digest)
        return document
