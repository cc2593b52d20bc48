"""Subscriptions under load (issue 17): one gateway worker, many WebSocket subscribers, v2
messages inserted by SQL at a steady rate; every delivery checked and timed.

    python -m bench.subscriptions [--subscribers 1000] [--per-conversation 10] [--rate 50]
                                  [--duration 30] [--distinct-viewers] [--quick]
                                  [--no-deflate] [--json PATH]

1. an embedded PostgreSQL in a temporary directory, migrated (revision 0009_realtime's trigger
   NOTIFYs each v2 message at its commit), with ``subscribers / per-conversation`` users, each
   owning one v2 conversation (and, with ``--distinct-viewers``, admins);
2. ONE gateway worker (``uvicorn gateway.http.asgi:app``, uvloop, the gateway's head-bounded
   httptools protocol), as ``authenticator`` over the Unix socket;
3. the subscribers, all in this process (asyncio on uvloop, the ``websockets`` client): one
   socket each (graphql-transport-ws, the bearer token in ``connection_init``), one
   ``messageAdded`` subscription each. By default the sockets of a conversation are all its
   owner's (a user with several tabs: the gateway reads each event once for them all); with
   ``--distinct-viewers`` the owner's and admins', each a viewer of its own (one read per
   socket). Warm-up messages go out until every socket has received one;
4. ``--rate`` messages per second for ``--duration`` seconds INSERTed into ``v2_messages`` (the
   database owner's connection, one transaction each), round-robin over the conversations; a
   delivery's latency is its receive time minus the moment its INSERT's COMMIT returned;
5. every socket must receive each message of its conversation once, in order, and nothing else;
6. statements, counted by PostgreSQL: ``log_statement = 'all'`` during a short calibration after
   the timed run (one message per conversation), the lines logged for ``authenticator`` counted.
   Not during the timed run: logging every statement would inflate the CPU figures.

CPU is utime+stime from ``/proc`` over the timed window (first INSERT until all delivered): the
gateway worker's, and PostgreSQL's (the postmaster and its children, the inserting backend left
out: its INSERTs happen with or without subscribers).

Modules: ``population`` (the users and conversations, each socket's viewer), ``clients`` (the
sockets and what they received), ``messages`` (the INSERTs, the warm-up and the waits for
deliveries), ``deliveries`` (the checks and latencies), ``statements`` (the calibration and its
statement count), ``measure`` (one run: CPU, RSS, the figures' raw material), ``report`` (the
figures and their print-out), ``cli`` (the options and the run; it reuses ``bench.graph``'s
database, gateway start, harness and ``/proc`` readers).
"""

from bench.subscriptions.cli import main

__all__ = ["main"]
