"""OpenTelemetry traces (DESIGN §11): a span per GraphQL request and one per SQL statement,
exported over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the exporter reads the
standard ``OTEL_*`` variables itself). Without it the API's no-op tracer costs next to
nothing. A statement's span names its operation only (``db.operation``): its text is elided,
since the per-transaction set-up carries the viewer's claims."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import trace

tracer = trace.get_tracer("mwplu-gateway")
_configured = False


def configure(endpoint: str | None) -> None:
    """Install an OTLP exporter once per process when an endpoint is configured."""
    global _configured
    if _configured or not endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "mwplu-gateway"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True


def recording() -> bool:
    """Whether spans go anywhere: a tracer provider is installed (``configure``, or a test's).
    Until then the API's tracer hands out no-op spans, and a request need not make them
    (about 6 µs each, a span per statement)."""
    return not isinstance(trace.get_tracer_provider(), _NO_PROVIDERS)


_NO_PROVIDERS = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_NOTHING: AbstractContextManager[None] = nullcontext()


def request_span(request_id: str) -> AbstractContextManager[Any]:
    """The span of one GraphQL request (``None`` when nothing records spans)."""
    if not recording():
        return _NOTHING
    return tracer.start_as_current_span(
        "graphql request", kind=trace.SpanKind.SERVER, attributes={"mwplu.request_id": request_id}
    )


def statement_span(sql: object) -> AbstractContextManager[Any]:
    """A span for one statement (``sql``: its text, or a SQLAlchemy statement, turned into text
    only when spans are recorded: that builds a dialect each time)."""
    if not recording():
        return _NOTHING
    return _statement_span(str(sql))


@contextmanager
def _statement_span(sql: str) -> Iterator[Any]:
    words = sql.lstrip().split(None, 1)
    operation = words[0].upper() if words else ""
    with tracer.start_as_current_span(
        f"sql {operation}", kind=trace.SpanKind.CLIENT,
        attributes={"db.system": "postgresql", "db.operation": operation},
    ) as span:
        yield span
