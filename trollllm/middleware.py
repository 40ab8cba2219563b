"""Pure-ASGI middleware for every request: request id, body size limit and the one-line access log.

Pure ASGI (not BaseHTTPMiddleware) so streaming responses pass through untouched and the hot path pays
one function call per layer.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trollllm.errors import PayloadTooLarge
from trollllm.http_errors import error_response

access_logger = logging.getLogger("trollllm.access")


def new_request_id() -> str:
    """A unique, unguessable id for one request: `req_`, 12 hex of the time in ms, then 16 random hex.

    Time first, so ids sort by creation and each new request log row lands at the end of the unique
    index on `request_id` (one page that stays cached) rather than on a random page of it.
    """
    return f"req_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(8)}"


class RequestContextMiddleware:
    """Gives each request an id (`x-request-id`), enforces the body limit and logs one line at the end."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        path: str = scope["path"]
        started = time.perf_counter()
        status = 500
        limit = self.max_body_bytes

        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    await error_response(path, PayloadTooLarge(field="body"), request_id)(
                        scope, receive, send
                    )
                    self._log(scope, 413, started, request_id)
                    return
                break

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            if response_started:
                raise
            status = 413
            await error_response(path, PayloadTooLarge(field="body"), request_id)(scope, receive, send)
        finally:
            self._log(scope, status, started, request_id)

    @staticmethod
    def _log(scope: Scope, status: int, started: float, request_id: str) -> None:
        if access_logger.isEnabledFor(logging.INFO):
            log_access(scope, status, started, request_id)


def log_access(scope: Scope, status: int, started: float, request_id: str) -> None:
    """The one access-log line of a finished request (`started` from `time.perf_counter()`)."""
    fields: dict[str, Any] = {
        "request_id": request_id,
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    access_logger.info("request", extra=fields)


class _BodyTooLarge(Exception):
    """Raised inside the app when the streamed body passes the limit."""
