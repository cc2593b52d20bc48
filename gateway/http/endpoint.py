"""``/graphql``: GraphiQL for a browser, else the operation run as the viewer in one
transaction and answered in the media type the client accepts."""

from __future__ import annotations

import logging
import time
from typing import Any

import strawberry
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from gateway.auth import viewer_from_header
from gateway.context import Context
from gateway.errors import BadUserInput, GatewayError, Unauthenticated
from gateway.http.graphiql import GraphiQLPage
from gateway.http.media import MediaType, negotiate
from gateway.http.outcomes import RETRY_AFTER_S, UNAVAILABLE, record, unconfirmed
from gateway.http.persisted import (
    PersistedDocuments,
    PersistedQueryNotAllowed,
    PersistedQueryNotFound,
)
from gateway.http.requests import (
    ALL_OPERATIONS,
    QUERY_ONLY,
    BodyTooLarge,
    JSONResponse,
    Params,
    error_response,
    format_error,
    get_params,
    is_request_error,
    loads_json,
    parse_params,
    post_content_type,
    read_body,
    request_error_status,
    request_id_of,
)
from gateway.http.subscriptions import event_stream, wants_event_stream
from gateway.settings import Settings
from gateway.tracing import request_span
from schema.prepared import execute_operation

log = logging.getLogger("gateway.http")

# A client's X-Request-Id is echoed in the response and the logs only when it looks like one.


class GraphQLEndpoint:
    def __init__(
        self,
        schema: strawberry.Schema,
        settings: Settings,
        graphiql: GraphiQLPage | None = None,
        persisted: PersistedDocuments | None = None,
    ) -> None:
        self.schema = schema
        self.settings = settings
        self.graphiql = graphiql
        self.persisted = persisted or PersistedDocuments()

    async def endpoint(self, request: Request) -> Response:
        started = time.perf_counter()
        request_id = request_id_of(request)
        with request_span(request_id) as span:
            response = await self.answer(request, request_id)
            if not getattr(request.state, "page", False):
                record(request, request_id, response, time.perf_counter() - started, span)
        return response

    async def answer(self, request: Request, request_id: str) -> Response:
        # None: the client accepts no type the gateway serves (406 once the request is known
        # to be well-formed; the refusals before that are in application/json).
        media = negotiate(request.headers.get("accept"))
        try:
            return await self.handle(request, request_id, media)
        except BodyTooLarge as exc:
            log.info("request %s: refused: %s", request_id, exc)
            return error_response(exc, 413, {"x-request-id": request_id}, media)
        except Unauthenticated as exc:
            # The reason only: never the header or the token.
            log.info("request %s: unauthenticated: %s", request_id, exc)
            headers = {
                "www-authenticate": 'Bearer error="invalid_token"',
                "x-request-id": request_id,
            }
            return error_response(exc, 401, headers, media)
        except BadUserInput as exc:
            log.info("request %s: refused: %s", request_id, exc)
            return error_response(exc, 400, {"x-request-id": request_id}, media)
        except Exception:
            # Outside the schema (e.g. the commit failed): same masking as inside it.
            log.exception("internal error [request %s] outside execution", request_id)
            masked = GatewayError("Internal server error.", requestId=request_id)
            return error_response(masked, 500, {"x-request-id": request_id}, media)

    async def handle(self, request: Request, request_id: str, media: MediaType | None) -> Response:
        if request.method == "GET":
            if "query" not in request.query_params and self.graphiql is not None:
                if "text/html" in request.headers.get("accept", ""):
                    request.state.page = True  # not a GraphQL request: not logged as one
                    return self.graphiql.page()
            limit = self.settings.limits.max_body_bytes
            if len(request.scope.get("query_string", b"")) > limit:
                raise BodyTooLarge(f"query string exceeds {limit} bytes")
            raw: Any = get_params(request)
            allowed = QUERY_ONLY
        else:
            refusal = post_content_type(request)
            if refusal is not None:
                content_type = request.headers.get("content-type", "")
                log.info("request %s: refused: content type %.100r", request_id, content_type)
                return error_response(
                    BadUserInput(refusal), 415, {"x-request-id": request_id}, media
                )
            try:
                body = await read_body(request, self.settings.limits.max_body_bytes)
            except ClientDisconnect:
                log.info("request %s: the client went away while sending its body", request_id)
                return Response(status_code=400)
            raw = loads_json(body)
            allowed = ALL_OPERATIONS
        params = parse_params(raw)
        # graphql-sse: a subscription answered as a stream of events
        streamed = wants_event_stream(request)
        if streamed:
            media = negotiate("application/json")
        if media is None:
            accept = request.headers.get("accept", "")
            log.info("request %s: refused: not acceptable %.100r", request_id, accept)
            return error_response(
                BadUserInput(
                    "responses are application/graphql-response+json or application/json"
                ),
                406,
                {"x-request-id": request_id},
            )
        try:
            params = params._replace(query=self.persisted.resolve(params.query, params.extensions))
        except PersistedQueryNotFound as exc:
            # Apollo's clients then send the query with its hash (200 in application/json).
            return error_response(exc, 400 if media.strict else 200,
                                  {"x-request-id": request_id}, media)
        except PersistedQueryNotAllowed as exc:
            log.info("request %s: refused: not a trusted document", request_id)
            return error_response(exc, 400, {"x-request-id": request_id}, media)
        viewer = viewer_from_header(request.headers.get("authorization"), self.settings)
        request.state.role = viewer.role
        if streamed:
            request.state.page = True  # a stream, not one request: not logged as one
            return await event_stream(request, request_id, params, viewer)
        return await self.execute(request, request_id, params, allowed, viewer, media)

    async def execute(
        self,
        request: Request,
        request_id: str,
        params: Params,
        allowed: set[OperationType],
        viewer: Any,
        media: MediaType,
    ) -> Response:
        context = Context(
            settings=self.settings,
            engine=request.app.state.engine,
            viewer=viewer,
            request_id=request_id,
        )
        request.state.context = context
        committed = False
        try:
            result = await execute_operation(
                self.schema,
                params.query,
                variable_values=params.variables,
                context_value=context,
                operation_name=params.operation,
                allowed_operation_types=allowed,
                operation_extensions=params.extensions,
            )
            committed = True  # from here on, a failure is the COMMIT's (or ROLLBACK's)
            await context.finish(commit=not result.errors)
        except InvalidOperationTypeError as exc:
            if exc.operation_type == OperationType.MUTATION:
                log.info("request %s: refused: a mutation over GET", request_id)
                return error_response(
                    BadUserInput("mutations are only accepted over POST"),
                    405,
                    {"allow": "POST", "x-request-id": request_id},
                    media,
                )
            log.info("request %s: refused: a %s", request_id, exc.operation_type.value)
            return error_response(
                BadUserInput(f"{exc.operation_type.value} operations are not supported"),
                400,
                {"x-request-id": request_id},
                media,
            )
        except CannotGetOperationTypeError:
            # GetOperation() failed: a request error, 200 in application/json (the spec).
            log.info("request %s: refused: unknown or ambiguous operationName", request_id)
            return error_response(
                BadUserInput("unknown or ambiguous operationName"),
                400 if media.strict else 200,
                {"x-request-id": request_id},
                media,
            )
        except Exception as exc:
            if not committed:
                raise
            return unconfirmed(exc, context, media)
        finally:
            if not committed:
                await context.finish(commit=False)
        headers = {"x-request-id": context.request_id}
        errors = [format_error(e) for e in result.errors or ()]
        if errors:
            request.state.outcome = (errors[0].get("extensions") or {}).get("code", "INTERNAL")
        if any((e.get("extensions") or {}).get("code") == UNAVAILABLE for e in errors):
            # The database could not take the request (restarting, out of connections): a
            # client that retries shortly gets an answer (DESIGN §11).
            headers["retry-after"] = str(RETRY_AFTER_S)
            body: dict[str, Any] = {"errors": errors}
            if not (media.strict and is_request_error(result)):
                body = {"data": result.data, "errors": errors}
            return JSONResponse(body, status_code=503, headers=headers,
                                media_type=media.content_type)
        if media.strict and is_request_error(result):
            # application/graphql-response+json: no data entry, a 4xx (5xx if ours).
            return JSONResponse(
                {"errors": errors},
                status_code=request_error_status(errors),
                headers=headers,
                media_type=media.content_type,
            )
        payload: dict[str, Any] = {"data": result.data}
        if errors:
            payload["errors"] = errors
        return JSONResponse(payload, headers=headers, media_type=media.content_type)
