"""Database access: URLs and engines (``engine``), one request's connection (``connection``),
the viewer's transaction (``transactions``) and the connections kept between transactions
(``kept``), read replicas (``replicas``, with the
read-your-writes token in ``read_your_writes``) and the Alembic revisions (``migrate``,
``migrations/``).

The request boundary owns the transaction: ``open_transaction`` begins it as the viewer and
``end_transaction`` commits or rolls back, keeping the connection for the next request
(``pooled`` lends kept connections to other users, ``in_use`` counts the others). Store
functions take the resulting ``Db`` and never commit.
"""

from gateway.db.connection import Db, positional
from gateway.db.engine import SETUP_MARKER, StatementCounter, create_engine, pool_capacity
from gateway.db.kept import in_use, pooled, release_idle, take_connection
from gateway.db.transactions import (
    ROLES,
    Viewer,
    become,
    begin_as,
    end_deferred,
    end_transaction,
    literal,
    open_transaction,
    set_local,
    statement_timeout_ms,
    viewer_settings,
    viewer_transaction,
)
from gateway.db.urls import DatabaseUrlError, async_url, connect_args

__all__ = [
    "ROLES",
    "SETUP_MARKER",
    "DatabaseUrlError",
    "Db",
    "StatementCounter",
    "Viewer",
    "async_url",
    "become",
    "begin_as",
    "connect_args",
    "create_engine",
    "end_deferred",
    "end_transaction",
    "in_use",
    "literal",
    "open_transaction",
    "pool_capacity",
    "pooled",
    "positional",
    "release_idle",
    "set_local",
    "statement_timeout_ms",
    "take_connection",
    "viewer_settings",
    "viewer_transaction",
]
