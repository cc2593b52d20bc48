"""A request's outcome: the answer when the database did not confirm its commit, its one
JSON log line (never a token) and its metrics."""

from __future__ import annotations

import logging
from collections import Counter as Tally
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.context import Context
from gateway.db.failures import unavailable
from gateway.errors import ServiceUnavailable
from gateway.http.media import MediaType
from gateway.http.requests import JSONResponse
from gateway.metrics import CONTENT_TYPE_LATEST, Metrics

log = logging.getLogger("gateway.http")

# A client's X-Request-Id is echoed in the response and the logs only when it looks like one.


UNAVAILABLE = ServiceUnavailable.code
RETRY_AFTER_S = 1


def unconfirmed(exc: Exception, context: Context, media: MediaType) -> Response:
    """The answer when the transaction could not be committed: a query's reads may simply be
    retried; a mutation's writes may or may not have been committed (``outcome: unknown``)."""
    transient = unavailable(exc)
    if transient:
        log.warning("request %s: the commit failed, database unavailable: %r",
                    context.request_id, exc)
    else:
        log.error("request %s: the commit failed", context.request_id, exc_info=exc)
    extensions: dict[str, Any] = {
        "code": UNAVAILABLE if transient else "INTERNAL",
        "requestId": context.request_id,
    }
    message = "The database did not confirm the transaction; retry shortly."
    if context.wrote:
        extensions["outcome"] = "unknown"
        message = ("The database did not confirm the write: it may or may not have been "
                   "made. Retry with the same idempotency key, or read before writing again.")
    headers = {"x-request-id": context.request_id}
    if transient:
        headers["retry-after"] = str(RETRY_AFTER_S)
    body: dict[str, Any] = {"errors": [{"message": message, "extensions": extensions}]}
    if not media.strict:
        body = {"data": None, **body}
    return JSONResponse(body, status_code=503 if transient else 500, headers=headers,
                        media_type=media.content_type)


# The outcome of a request answered before execution, by its HTTP status.
STATUS_OUTCOMES = {401: "UNAUTHENTICATED", 500: "INTERNAL", 503: UNAVAILABLE}
requests_log = logging.getLogger("gateway.requests")


def record(
    request: Request, request_id: str, response: Response, seconds: float, span: Any = None
) -> None:
    """The request's one log line (JSON; never a token), its metrics and its span's
    attributes."""
    context: Context | None = getattr(request.state, "context", None)
    status = response.status_code
    outcome = getattr(request.state, "outcome", None) or (
        "ok" if status < 400 else STATUS_OUTCOMES.get(status, "BAD_USER_INPUT")
    )
    operation_type = context.operation_type if context is not None else "unknown"
    statements = context.statements if context is not None else 0
    requests_log.info(orjson.dumps({
        "request_id": request_id,
        "operation_name": context.operation_name if context is not None else None,
        "operation_type": operation_type,
        "status": status,
        "outcome": outcome,
        "duration_ms": round(seconds * 1000, 2),
        "statements": statements,
        "role": getattr(request.state, "role", None),
        # where its transaction ran: "primary" or a replica's name (DESIGN §6)
        "database": context.target if context is not None and context.statements else None,
    }).decode())
    if span is not None and span.is_recording():
        span.set_attributes({
            "graphql.operation.type": operation_type,
            "graphql.operation.name": (context.operation_name if context else None) or "",
            "http.response.status_code": status,
            "mwplu.outcome": outcome,
            "mwplu.statements": statements,
            **{f"mwplu.source.{source}.{kind}_read": count
               for (kind, source), count in (context.reads if context else Tally()).items()},
        })
    metrics: Metrics = request.app.state.metrics
    metrics.request(
        operation_type, outcome, seconds, statements,
        context.reads if context is not None else Tally(),
        context.writes if context is not None and context.committed else Tally(),
    )


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
