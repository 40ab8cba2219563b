"""Who is looking at a page: the session cookie read for pages, and the CSRF token of plain HTML forms.

Pages never answer JSON errors: an anonymous visitor is sent to `/login`. Forms posted before a session
exists (login, register) use the same double-submit CSRF cookie as the JSON API: the page puts the
cookie's value in a hidden field and the POST must echo it.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from starlette.responses import Response

from trollllm.accounts.sessions import CSRF_COOKIE, current_user
from trollllm.accounts.tables import User
from trollllm.errors import GatewayError


async def page_user(request: Request) -> User | None:
    """The signed-in, active user of a GET page, or None (expired, rotated away, deactivated, anonymous)."""
    try:
        return await current_user(request)
    except GatewayError:
        return None


def csrf_token(request: Request) -> str:
    """The CSRF value a form must echo: the browser's CSRF cookie, or a fresh one `remember_csrf` sets."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)


def remember_csrf(request: Request, response: Response, token: str, *, secure: bool) -> None:
    """Set the CSRF cookie when the browser does not have it yet (the page's forms carry `token`)."""
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, httponly=False, samesite="strict", secure=secure, path="/")


def form_csrf_ok(request: Request, posted: str) -> bool:
    """True when a posted form echoes the browser's CSRF cookie."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie, posted)
