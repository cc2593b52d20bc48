"""Settings: one frozen object read from the environment at start-up.

Nothing else in the project reads ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs

ENVIRONMENTS = ("development", "production", "test")


class SettingsError(ValueError):
    """A setting has a value the gateway cannot use."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not value > 0:
        raise SettingsError(f"{name} must be positive, got {raw!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be a boolean (true/false), got {raw!r}")


@dataclass(frozen=True)
class Limits:
    max_depth: int = 12
    max_aliases: int = 15
    max_tokens: int = 1000
    max_directives: int = 50
    max_body_bytes: int = 64 * 1024
    max_first: int = 100
    # Fields of a document once its fragment spreads are expanded (a fragment spread twice in
    # a fragment spread twice … doubles at each level while staying a few hundred tokens).
    max_expanded_fields: int = 2000
    # The request head, bounded by the HTTP protocol (gateway.http.protocol) before the app
    # sees it: names and values of all header lines, their count, and the seconds a client
    # may take to send them.
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0


@dataclass(frozen=True)
class Realtime:
    """Subscriptions (DESIGN §10)."""

    # How often v1 (which gets no trigger) is polled for messages its application wrote.
    v1_poll_s: float = 2.0
    max_subscriptions_per_connection: int = 20
    max_connections_per_viewer: int = 10  # per worker
    # Events waiting for one subscriber; beyond, it is a slow consumer (closed with 4429).
    queue_size: int = 200
    # LISTEN needs a session of its own: behind PgBouncer in transaction mode, a URL that
    # reaches PostgreSQL directly (or a session-mode pool). None: the serving URL.
    listen_url: str | None = None


@dataclass(frozen=True)
class Replicas:
    """Read replicas (DESIGN §6, ``gateway.db.replicas``)."""

    urls: tuple[str, ...] = ()
    # A client's queries within this many seconds of its own write go to the primary.
    read_your_writes_s: float = 5.0
    # A replica further behind the primary than this is skipped until it catches up.
    max_lag_s: float = 3.0
    # How often each worker checks its replicas (reachable, replaying, lag); between checks
    # it routes on what it last saw.
    check_s: float = 1.0

    def check(self) -> None:
        """A replica may be ``max_lag_s`` behind when last checked and ``check_s`` more
        since: past the read-your-writes window, a client's own write must be on it."""
        if self.urls and self.max_lag_s + self.check_s > self.read_your_writes_s:
            raise SettingsError(
                "GATEWAY_REPLICA_MAX_LAG_S + GATEWAY_REPLICA_CHECK_S "
                f"({self.max_lag_s:g} + {self.check_s:g}) must not exceed "
                f"GATEWAY_READ_YOUR_WRITES_S ({self.read_your_writes_s:g}): a replica that "
                "far behind could hide a client's own write from it once the window is over"
            )


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    migrations_database_url: str | None = None
    jwt_secret: str | None = None
    jwt_audience: str = "authenticated"
    authenticator_password: str | None = None
    env: str = "development"
    data_dir: Path = field(
        default_factory=lambda: Path(platformdirs.user_data_dir("mwplu-gateway"))
    )
    host: str = "127.0.0.1"
    port: int = 8000
    pool_size: int = 10
    statement_timeout_anon_ms: int = 3000
    statement_timeout_authenticated_ms: int = 8000
    statement_timeout_service_ms: int = 30000
    command_timeout_s: float = 15.0
    # PgBouncer in transaction mode cannot keep prepared statements per session.
    pgbouncer: bool = False
    graphiql: bool = True
    introspection: bool = True
    metrics: bool = False  # /metrics (Prometheus text)
    # OTLP endpoint for traces (the exporter reads OTEL_* itself); None: no traces exported.
    otlp_endpoint: str | None = None
    # The only documents this gateway runs ({sha256: document}); None: any document.
    trusted_documents: Path | None = None
    # Browser origins allowed to call the graph from pages of their own (CORS on /graphql,
    # and the WebSocket handshake); "*": any. Empty: same-origin pages only.
    cors_origins: tuple[str, ...] = ()
    # Development only: the user whose token GraphiQL's page carries (serve's embedded demo
    # passes it to its worker processes this way).
    graphiql_user: str | None = None
    limits: Limits = field(default_factory=Limits)
    realtime: Realtime = field(default_factory=Realtime)
    replicas: Replicas = field(default_factory=Replicas)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    def with_database(self, url: str, migrations_url: str | None = None) -> Settings:
        return replace(self, database_url=url, migrations_database_url=migrations_url or url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        gateway_env = env.get("GATEWAY_ENV", "development") or "development"
        if gateway_env not in ENVIRONMENTS:
            raise SettingsError(
                f"GATEWAY_ENV must be one of {', '.join(ENVIRONMENTS)}, got {gateway_env!r}"
            )
        production = gateway_env == "production"
        database_url = env.get("DATABASE_URL") or None
        data_dir = env.get("GATEWAY_DATA_DIR")
        limits = Limits(
            max_depth=_int(env, "GATEWAY_MAX_DEPTH", 12),
            max_aliases=_int(env, "GATEWAY_MAX_ALIASES", 15),
            max_tokens=_int(env, "GATEWAY_MAX_TOKENS", 1000),
            max_directives=_int(env, "GATEWAY_MAX_DIRECTIVES", 50),
            max_body_bytes=_int(env, "GATEWAY_MAX_BODY_BYTES", 64 * 1024),
            max_first=100,
            max_expanded_fields=_int(env, "GATEWAY_MAX_EXPANDED_FIELDS", 2000),
            max_header_bytes=_int(env, "GATEWAY_MAX_HEADER_BYTES", 16 * 1024),
            max_headers=_int(env, "GATEWAY_MAX_HEADERS", 100),
            header_timeout_s=_float(env, "GATEWAY_HEADER_TIMEOUT_S", 10.0),
        )
        settings = cls(
            database_url=database_url,
            migrations_database_url=env.get("MIGRATIONS_DATABASE_URL") or database_url,
            jwt_secret=env.get("JWT_SECRET") or None,
            jwt_audience=env.get("JWT_AUDIENCE", "authenticated") or "authenticated",
            authenticator_password=env.get("AUTHENTICATOR_PASSWORD") or None,
            env=gateway_env,
            host=env.get("GATEWAY_HOST", "127.0.0.1") or "127.0.0.1",
            port=_int(env, "GATEWAY_PORT", 8000),
            pool_size=_int(env, "GATEWAY_POOL_SIZE", 10),
            statement_timeout_anon_ms=_int(env, "GATEWAY_STATEMENT_TIMEOUT_ANON_MS", 3000),
            statement_timeout_authenticated_ms=_int(
                env, "GATEWAY_STATEMENT_TIMEOUT_AUTHENTICATED_MS", 8000
            ),
            statement_timeout_service_ms=_int(env, "GATEWAY_STATEMENT_TIMEOUT_SERVICE_MS", 30000),
            pgbouncer=_bool(env, "GATEWAY_PGBOUNCER", False),
            graphiql=_bool(env, "GATEWAY_GRAPHIQL", not production),
            introspection=_bool(env, "GATEWAY_INTROSPECTION", not production),
            metrics=_bool(env, "GATEWAY_METRICS", production),
            otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            trusted_documents=(
                Path(env["GATEWAY_TRUSTED_DOCUMENTS"]).expanduser()
                if env.get("GATEWAY_TRUSTED_DOCUMENTS") else None
            ),
            limits=limits,
            graphiql_user=env.get("GATEWAY_GRAPHIQL_USER") or None,
            cors_origins=tuple(
                o.strip() for o in env.get("GATEWAY_CORS_ORIGINS", "").split(",") if o.strip()
            ),
            realtime=Realtime(
                v1_poll_s=_float(env, "GATEWAY_V1_POLL_S", 2.0),
                max_subscriptions_per_connection=_int(env, "GATEWAY_MAX_SUBSCRIPTIONS", 20),
                max_connections_per_viewer=_int(env, "GATEWAY_MAX_CONNECTIONS_PER_VIEWER", 10),
                queue_size=_int(env, "GATEWAY_SUBSCRIBER_QUEUE", 200),
                listen_url=env.get("DATABASE_LISTEN_URL") or None,
            ),
            replicas=Replicas(
                urls=tuple(
                    url.strip()
                    for url in env.get("DATABASE_REPLICA_URLS", "").split(",")
                    if url.strip()
                ),
                read_your_writes_s=_float(env, "GATEWAY_READ_YOUR_WRITES_S", 5.0),
                max_lag_s=_float(env, "GATEWAY_REPLICA_MAX_LAG_S", 3.0),
                check_s=_float(env, "GATEWAY_REPLICA_CHECK_S", 1.0),
            ),
        )
        if data_dir:
            settings = replace(settings, data_dir=Path(data_dir).expanduser())
        if production and not database_url:
            raise SettingsError("DATABASE_URL is required when GATEWAY_ENV=production")
        if settings.replicas.urls and not database_url:
            raise SettingsError("DATABASE_REPLICA_URLS needs DATABASE_URL (their primary)")
        settings.replicas.check()
        return settings

    def check_serving(self) -> None:
        """Serving (unlike migrating) needs a secret to verify tokens in production."""
        if self.production and not self.jwt_secret:
            raise SettingsError("JWT_SECRET is required when GATEWAY_ENV=production")
