"""The graph under load, side by side with the raw-SQL limit and PostGraphile 5 (issue 6).

    python -m bench.graph [--scale-conversations 20000] [--messages 10] [--events 1000000]
                          [--duration 15] [--rounds 1] [--connections 16] [--workers 1]
                          [--skip-postgraphile] [--profile 200]
                          [--database-url postgresql://owner:pw@127.0.0.1:5432/db]

One run, one machine, every figure side by side:

1. a fresh database on an embedded PostgreSQL (temporary directory) or, with
   ``--database-url``, an external one over TCP (a superuser URL of an empty database; the
   migrations give role ``authenticator`` a password, ``AUTHENTICATOR_PASSWORD`` or a random
   one), with the project's own migrations, loaded with COPY (``bench.graph_data``): N v2
   conversations over projects with a main city and zone, M messages each, as many v1
   conversations and messages, documents, users and the analytics events;
2. the gateway (``uvicorn gateway.http.asgi:app``, uvloop + httptools, ``--workers``), the raw
   limit (``bench.raw_server``: the whole R1 response built by one SQL statement) and, when
   ``npm install postgraphile@5 node@22`` works, PostGraphile 5 (``bench/postgraphile_server.mjs``)
   on 127.0.0.1, all as ``authenticator`` over the embedded server's Unix socket (or TCP to
   the external one), all as ``service_role``
   (a verified bearer token, its role and claims set per request transaction, PostGraphile too);
3. SQL statements per request, counted in-process through the ASGI app with
   ``gateway.db.StatementCounter``; R1 data compared across the servers (timestamps as
   instants) before any figure; R4 buckets compared with the bare SQL ``GROUP BY``;
4. ``wrk`` (Debian package) with a Lua script per workload and server: fixed connections for
   a bounded time, after a short warm-up; server CPU from ``/proc/<pid>/stat`` (utime+stime,
   the server's processes and, separately, Postgres': the postmaster and its children, "n/a"
   for an external server whose processes this machine cannot see) and RSS from
   ``/proc/<pid>/status``; with ``--rounds N``, N rounds of each read workload, the servers
   alternating, each server's median round reported;
5. optionally, a pyinstrument profile of R1 run in-process (``--profile N`` requests).

Workloads: R1 the first 50 v2 conversations with project, city and first 10 messages;
R2 the mixed v1/v2 reference query of the unified-graph issue (``tests/test_statement_count``)
at ``first: 50``; R3 ``node(id:)`` of random conversations of both stores; R4
``chatEventStats(groupBy: [SOURCE, DAY])`` over the events; R6 a connection nested under a
list (20 projects, each with a page of 10 conversations and their ``totalCount``, each with
its first 5 messages), beside PostGraphile's same shape; R7 a write, ``migrateConversation``
of a different v1 conversation per request (run last: it changes what the listings show);
R8 a write, ``postMessage`` round-robin into 200 v2 conversations, each request with its
conversation owner's token, beside the raw limit's bare transaction of the same writes
(``POST /post-message``; PostGraphile has no such mutation), and R8-hot, every post into one
conversation (its row lock serialises them); counted, checked and measured after everything
else, then the conversations' stored counts checked against the live ones.
R5 (bulk migration) is ``python -m bench.bulk_migration``.

A benchmark, not a test: absolute figures depend on the machine (wrk shares its cores with the
servers); ratios measured in the same run are what to compare.

Modules: ``workloads`` (R1 to R8: the queries and request bodies), ``data`` (the database and its
load), ``servers`` (the gateway, the raw limit, PostGraphile: started and stopped by PID),
``procfs`` (CPU and memory from ``/proc``), ``measure`` (wrk and one point), ``checks`` (answers
compared before any figure), ``statements`` (statement counts, ``--explain``), ``profile``
(pyinstrument, py-spy), ``report`` (the tables), ``harness`` (the temporary directory, embedded
PostgreSQL, processes and event loop a run happens in; ``bench.soak`` and
``bench.subscriptions`` run in it too), ``cli`` (the options and the run).
"""

from __future__ import annotations

from bench.graph.cli import main
from bench.graph.workloads import (
    R1,
    R1_POSTGRAPHILE,
    R3,
    R3_POSTGRAPHILE,
    R4,
    R4_SQL,
    R6,
    R6_POSTGRAPHILE,
    R7,
    R8,
    Request,
    Workload,
    build_workloads,
    reference_query,
)

__all__ = [
    "R1",
    "R1_POSTGRAPHILE",
    "R3",
    "R3_POSTGRAPHILE",
    "R4",
    "R4_SQL",
    "R6",
    "R6_POSTGRAPHILE",
    "R7",
    "R8",
    "Request",
    "Workload",
    "build_workloads",
    "main",
    "reference_query",
]
