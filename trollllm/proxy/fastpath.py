"""The proxy endpoints' own dispatch, ahead of FastAPI's router and middleware stack.

The three `/v1` endpoints are plain Starlette handlers; sending them straight to their handler skips
route matching over every dashboard route and four framework middlewares — a large share of the
gateway's own latency. Errors are rendered exactly as the app's handlers render them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from trollllm.errors import GatewayError
from trollllm.http_errors import error_response

logger = logging.getLogger("trollllm.proxy")

Endpoint = Callable[[Request], Awaitable[Response]]


class ProxyFastPath:
    """Pure ASGI middleware: `(method, path)` of a proxy route → its handler; anything else → the app."""

    def __init__(self, app: ASGIApp, routes: list[Route]) -> None:
        self.app = app
        self.endpoints: dict[tuple[str, str], Endpoint] = {
            (method, route.path): route.endpoint for route in routes for method in route.methods or ()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.endpoints.get((scope["method"], scope["path"]))
            if endpoint is not None:
                await self._handle(endpoint, scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _handle(endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except GatewayError as error:
            response = error_response(scope["path"], error, request.state.request_id)
        except Exception:
            logger.exception("unhandled error on the proxy path", extra={"path": scope["path"]})
            response = error_response(scope["path"], GatewayError(), request.state.request_id)
        await response(scope, receive, send)
