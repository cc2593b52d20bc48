"""A soak with faults (issue 16, item 12): mixed reads and writes against the gateway while its
PostgreSQL restarts, then every acknowledged write looked for.

    python -m bench.soak [--duration 600] [--restart-every 120] [--connections 16]
                         [--workers 1] [--scale-conversations 2000] [--log PATH]

1. an embedded PostgreSQL in a temporary directory (the run owns its data dir), migrated and
   loaded with ``bench.graph``'s data (N conversations per store, 10 messages each); the flag
   ``v2_conversations`` at 50 % so that ``startConversation`` writes to both stores;
2. the gateway as ``mwplu-gateway serve`` runs it (uvicorn, uvloop, the head-bounded
   httptools protocol, ``--workers``), logged in as ``authenticator``;
3. ``--connections`` clients (httpx), each sending one request at a time as one of 200 users:
   60 % the README's conversation query (``first: 10``), 30 % ``postMessage`` into one of 200
   conversations of both stores as its owner, with an idempotency key, sent again with the same
   key after 1 s while the answer is 503, a transport error or ``outcome: "unknown"`` (the
   README's safe retry), 10 % ``startConversation`` (not safe to retry: sent once);
4. meanwhile ``pg_ctl restart -m fast`` every ``--restart-every`` seconds, and the gateway
   worker's RSS sampled every second;
5. afterwards, as the database's owner: every row an acknowledged mutation (200, no errors)
   said it wrote must be there, and no write's text twice.

Prints the requests, acknowledged writes missing afterwards (target 0) and written twice, the
errors after each restart by kind, the seconds from each restart to the first success of a
request sent after its first error, and the worker's RSS at each tenth of the run. Exit status
1 when an acknowledged write is missing or doubled, or any answer was ``INTERNAL``.

Modules: ``load`` (the clients and what they record), ``report`` (the figures), ``cli`` (the
options and the run; it reuses ``bench.graph``'s database, servers and ``/proc`` readers).
"""

from bench.soak.cli import main

__all__ = ["main"]
