"""The proxy endpoints' own front door: a `/v1` request goes from the server straight to its handler.

The app (`GatewayApp` in `trollllm.app`) hands every request for a proxy path to `serve_proxy` before
FastAPI sees it: no route matching over the dashboard's routes, no middleware stack, no `Request` object.
That outer machinery was a large share of the gateway's own latency. What the middleware gives every other
route is done here for these paths, once: the request id (`x-request-id`), the body size limit (413), the
one-line access log, and errors rendered in the endpoint's own format (405 for a wrong method too).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.types import Receive, Scope, Send

from trollllm.db import database_unreachable
from trollllm.errors import (
    DatabaseUnavailable,
    GatewayError,
    IncompleteBody,
    MethodNotAllowed,
    PayloadTooLarge,
    ServerShutdown,
)
from trollllm.http_errors import error_response
from trollllm.middleware import access_logger, log_access, new_request_id
from trollllm.state import AppState

logger = logging.getLogger("trollllm.proxy")

# The only request headers the proxy reads (raw lower-case name -> its name in `ProxyCall.headers`).
_HEADERS_READ = {
    name.encode(): name
    for name in (
        "authorization",
        "x-api-key",
        "anthropic-version",
        "anthropic-beta",
        "content-length",
        "session-id",  # Codex CLI's conversation: the hint that keeps it on one factory key
    )
}


@dataclass(slots=True)
class ProxyCall:
    """One proxy request as its handler sees it."""

    path: str
    request_id: str
    headers: dict[str, str]
    """The request headers the proxy reads (lower-case names); the others are not decoded."""
    body: bytes
    model: str = ""
    """The model's id once the gate has found it (a metrics label: never a name a client made up)."""


class ProxyResponse(Protocol):
    """What a handler returns: an ASGI response that knows its status (for the access log)."""

    status_code: int

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the response."""
        ...


ProxyHandler = Callable[[AppState, ProxyCall], Awaitable[ProxyResponse]]


class RawResponse:
    """A complete response with prebuilt raw headers, sent in two ASGI messages."""

    __slots__ = ("body", "headers", "status_code")

    def __init__(self, status_code: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status_code
        self.body = body
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the status line, the headers (with `content-length`) and the body."""
        headers = [*self.headers, (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


async def serve_proxy(
    handlers: dict[str, ProxyHandler], state: AppState, scope: Scope, receive: Receive, send: Send
) -> None:
    """Serve one request for a proxy path with the handler of its method (405 if there is none)."""
    request_id = new_request_id()
    started = time.perf_counter()
    path: str = scope["path"]
    response: ProxyResponse
    call: ProxyCall | None = None
    try:
        handler = handlers.get(scope["method"])
        if handler is None:
            raise MethodNotAllowed(headers={"Allow": ", ".join(sorted(handlers))})
        headers = {}
        for name, value in scope["headers"]:
            read_as = _HEADERS_READ.get(name)
            if read_as is not None:
                headers[read_as] = value.decode("latin-1")
        body = await _read_body(receive, headers.get("content-length"), state.settings.max_body_bytes)
        call = ProxyCall(path, request_id, headers, body)
        response = await handler(state, call)
    except GatewayError as error:
        response = error_response(path, error, request_id)
    except asyncio.CancelledError:
        # Only the server's shutdown cancels a request (past its graceful period); the handler has
        # settled it. Answered in the endpoint's format, not as the server's plain-text 500 and traceback.
        response = error_response(path, ServerShutdown(), request_id)
    except Exception as exc:
        if database_unreachable(exc):  # refused before anything was held or sent upstream
            logger.warning("database unreachable; request refused with 503", extra={"path": path})
            response = error_response(path, DatabaseUnavailable(), request_id)
        else:
            logger.exception("unhandled error on the proxy path", extra={"path": path})
            response = error_response(path, GatewayError(), request_id)
    try:
        await response(scope, receive, send)
    finally:
        if access_logger.isEnabledFor(logging.INFO):
            log_access(scope, response.status_code, started, request_id)
        model = "" if call is None else call.model
        state.telemetry.observe_request(path, model, response.status_code, time.perf_counter() - started)


async def _read_body(receive: Receive, content_length: str | None, limit: int) -> bytes:
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise PayloadTooLarge(field="body")
    message = await receive()
    if message["type"] != "http.request":  # the client went away before sending its body
        raise IncompleteBody(field="body")
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise PayloadTooLarge(field="body")
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":  # the client went away: a partial body is no body
            raise IncompleteBody(field="body")
        part: bytes = message.get("body", b"")
        size += len(part)
        if size > limit:
            raise PayloadTooLarge(field="body")
        parts.append(part)
    return b"".join(parts)
