"""OpenTelemetry traces (DESIGN §11): a span per GraphQL request and one per SQL statement,
exported over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the exporter reads the
standard ``OTEL_*`` variables itself). Without it the API's no-op tracer costs next to
nothing. A statement's span names its operation only (``db.operation``): its text is elided,
since the per-transaction set-up carries the viewer's claims."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def statement_span(sql: str) -> Iterator[Any]:
    words = sql.lstrip().split(None, 1)
    operation = words[0].upper() if words else ""
    with tracer.start_as_current_span(
        f"sql {operation}", kind=trace.SpanKind.CLIENT,
        attributes={"db.system": "postgresql", "db.operation": operation},
    ) as span:
        yield span
