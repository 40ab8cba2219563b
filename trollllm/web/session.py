"""Who is looking at a page: the session cookie read for pages, and the CSRF token of plain HTML forms.

Pages never answer JSON errors: an anonymous visitor is sent to `/login`. Every form carries a CSRF field
its POST must echo. Signed in, it is the session's own token (an HMAC of the session, as the JSON API
checks it); before a session exists (login, register) it is a random double-submit value kept in the CSRF
cookie. A one-time notice (the flash cookie) tells the page after a redirect what a form did.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs, quote, unquote

from fastapi import Request
from starlette.responses import Response

from trollllm.accounts.sessions import (
    CSRF_COOKIE,
    authenticated_user,
    cookie_name,
    current_user,
    session_cookie,
    session_csrf_token,
)
from trollllm.accounts.tables import User
from trollllm.errors import GatewayError
from trollllm.state import get_state

FLASH_COOKIE = "trollllm_flash"


async def page_user(request: Request) -> User | None:
    """The signed-in, active user of a GET page, or None (expired, rotated away, deactivated, anonymous)."""
    try:
        return await current_user(request)
    except GatewayError:
        return None


def csrf_token(request: Request) -> str:
    """The CSRF value a form must echo: the session's token, else the browser's CSRF cookie or a fresh one."""
    state = get_state(request)
    session = session_cookie(request)
    if session:
        return session_csrf_token(state, session)
    return request.cookies.get(cookie_name(state.settings, CSRF_COOKIE)) or secrets.token_urlsafe(24)


def remember_csrf(request: Request, response: Response, token: str) -> None:
    """Set the CSRF cookie when the browser does not have it yet (the page's forms carry `token`)."""
    settings = get_state(request).settings
    name = cookie_name(settings, CSRF_COOKIE)
    if request.cookies.get(name) != token:
        response.set_cookie(
            name, token, httponly=False, samesite="strict", secure=settings.secure_cookies, path="/"
        )


def form_csrf_ok(request: Request, posted: str) -> bool:
    """True when a posted form echoes its CSRF value (the session's token when signed in)."""
    state = get_state(request)
    session = session_cookie(request)
    if session:
        expected = session_csrf_token(state, session)
    else:
        expected = request.cookies.get(cookie_name(state.settings, CSRF_COOKIE), "")
    return bool(expected) and hmac.compare_digest(expected.encode(), posted.encode())


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form body as single values (the pages post no multipart)."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


async def form_user(request: Request, form: dict[str, str]) -> User | None:
    """The signed-in, active user of a form POST whose `csrf` field echoes the CSRF cookie, or None."""
    if not form_csrf_ok(request, form.get("csrf", "")):
        return None
    try:
        return await authenticated_user(request, form_csrf_checked=True)
    except GatewayError:
        return None


def set_flash(response: Response, message: str) -> None:
    """A one-time notice for the next page (after a redirect that follows a form)."""
    response.set_cookie(
        FLASH_COOKIE, quote(message[:300]), max_age=60, httponly=True, samesite="lax", path="/"
    )


def take_flash(request: Request) -> str | None:
    """The pending one-time notice, if any; the page that shows it calls `clear_flash` on its response."""
    raw = request.cookies.get(FLASH_COOKIE)
    return unquote(raw) if raw else None


def clear_flash(request: Request, response: Response) -> None:
    """Forget the notice once shown."""
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path="/")
