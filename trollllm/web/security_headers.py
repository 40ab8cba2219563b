"""The security headers of every page and every other answer of the app (SPEC §9).

Pages run only the app's own script files: no inline script, no `eval`, no other origin, never in a
frame. Inline `style` attributes stay allowed (the progress bars set their width; a style cannot run
code). HSTS is sent only on a request that arrived over HTTPS (directly, or through a trusted proxy's
`X-Forwarded-Proto`): over plain HTTP it would mean nothing, and a local HTTP setup must stay reachable.

Pure ASGI, so streamed answers pass through untouched; the `/v1` proxy paths never reach it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
STRICT_TRANSPORT_SECURITY = "max-age=31536000"

_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate it
)
_HSTS = (b"strict-transport-security", STRICT_TRANSPORT_SECURITY.encode())


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP answer (a header the route set itself is kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = (*_HEADERS, _HSTS) if scope.get("scheme") == "https" else _HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(header for header in extra if header[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
