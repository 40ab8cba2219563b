"""The one place that turns errors into HTTP responses, in the shape of the surface that was called.

- `/v1/messages…`: Anthropic shape `{"type": "error", "error": {"type", "message", …}}`
- other `/v1/…`: OpenAI shape `{"error": {"type", "message", "code", …}}`
- everything else (`/api`, health): `{"error": {"type", "message", "field"?, …}}`
- pages (when the app passes `pages`): HTML from the pages' own renderer, never raw JSON
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from trollllm.crypto import mask_secrets
from trollllm.db import database_unreachable
from trollllm.errors import (
    DatabaseUnavailable,
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    ValidationFailed,
)
from trollllm.wire import ENDPOINTS, WireFormat, wire_of_path

logger = logging.getLogger("trollllm.errors")


def error_body(path: str, error: GatewayError) -> dict[str, Any]:
    """The JSON body for `error` on the surface that serves `path`."""
    message = mask_secrets(error.message)
    fields = error.body_fields()
    wire = wire_of_path(path)
    if wire is WireFormat.ANTHROPIC:
        return {"type": "error", "error": {"type": error.error_type, "message": message, **fields}}
    if wire is WireFormat.OPENAI:
        return {"error": {"type": error.error_type, "message": message, "code": error.error_type, **fields}}
    return {"error": {"type": error.error_type, "message": message, **fields}}


def stream_error_event(wire: WireFormat, error: GatewayError) -> bytes:
    """An error inside an SSE stream (the status line is already sent), in the wire's own shape.

    A relay ends a stream it cuts with its own `cut(error)`: this event for chat completions and messages,
    `response.failed` for the Responses relays (a response that ends); this `error` event is for a
    Responses stream with no response to end."""
    if wire is WireFormat.RESPONSES:  # the Responses API's own `error` event
        body = error_body(ENDPOINTS[wire], error)["error"]
        event = {"type": "error", "code": body["code"], "message": body["message"], "param": None}
        return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
    payload = orjson.dumps(error_body(ENDPOINTS[wire], error))
    if wire is WireFormat.ANTHROPIC:
        return b"event: error\ndata: " + payload + b"\n\n"
    return b"data: " + payload + b"\n\n"


def error_response(path: str, error: GatewayError, request_id: str | None = None) -> Response:
    """A complete response for `error`, with its status, headers and the request id."""
    headers = dict(error.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return Response(
        orjson.dumps(error_body(path, error)),
        status_code=error.status_code,
        media_type="application/json",
        headers=headers,
    )


@dataclass(frozen=True, slots=True)
class PageErrors:
    """How the pages render an error: which paths are pages, and the HTML response for an error."""

    is_page: Callable[[str], bool]
    render: Callable[[GatewayError], Response]


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _first_validation_error(exc: RequestValidationError) -> ValidationFailed:
    errors = exc.errors()
    if not errors:
        return ValidationFailed("Invalid request body")
    first = errors[0]
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(location) or None
    if first.get("type") == "json_invalid":
        return ValidationFailed("Request body is not valid JSON", field=None)
    message = str(first.get("msg", "Invalid value")).removeprefix("Value error, ")
    return ValidationFailed(f"{field}: {message}" if field else message, field=field)


_API_PREFIXES = ("/api/", "/v1/")


def _browser_lost(request: Request, error: GatewayError) -> bool:
    """A browser on an unknown address: an HTML 404 page (API paths and non-HTML clients get JSON)."""
    path = request.url.path
    if error.status_code != 404 or path in ("/api", "/v1") or path.startswith(_API_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "")


def install_error_handlers(app: FastAPI, pages: PageErrors | None = None) -> None:
    """Map every exception the app can raise to exactly one response shape (HTML on `pages` paths)."""

    def respond(request: Request, error: GatewayError) -> Response:
        if pages is not None and (pages.is_page(request.url.path) or _browser_lost(request, error)):
            return pages.render(error)
        return error_response(request.url.path, error, _request_id(request))

    async def on_gateway_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return respond(request, exc)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(request.url.path, _first_validation_error(exc), _request_id(request))

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        error: GatewayError
        if exc.status_code == 404:
            error = NotFound()
        elif exc.status_code == 405:
            error = MethodNotAllowed()
        else:
            error = InvalidRequest(str(exc.detail))
            error.status_code = exc.status_code
        return respond(request, error)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        if database_unreachable(exc):
            logger.warning("database unreachable; request refused with 503", extra={"path": request.url.path})
            return respond(request, DatabaseUnavailable())
        logger.error(
            "unhandled error",
            exc_info=exc,
            extra={"path": request.url.path, "request_id": _request_id(request)},
        )
        return respond(request, GatewayError())

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(Exception, on_unexpected)
