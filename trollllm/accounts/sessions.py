"""Dashboard sessions: JWTs (Bearer or cookie), CSRF for cookie writes, and the current-user dependency.

A token carries the user id and a token version; every request re-reads the user, so a demotion,
deactivation or password change takes effect at once.

The CSRF token of a session is an HMAC of its JWT under the server's key: a write authenticated by the
session cookie must echo it, and no one can make one without the secret and the (HttpOnly) session
cookie, so a cookie planted from a sibling domain cannot forge it. With `Secure` cookies (default in
production) their names carry the `__Host-` prefix: the browser then accepts them only from this host
over HTTPS, with `Path=/`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

import jwt
from fastapi import Depends, Request
from sqlalchemy import select
from starlette.responses import Response

from trollllm.accounts.tables import User
from trollllm.errors import CsrfFailed, Forbidden, Unauthenticated
from trollllm.settings import Settings
from trollllm.state import AppState, get_state

JWT_ALGORITHM = "HS256"
SESSION_COOKIE = "trollllm_session"
CSRF_COOKIE = "trollllm_csrf"
CSRF_HEADER = "x-csrf-token"
SECURE_COOKIE_PREFIX = "__Host-"
_CSRF_CONTEXT = b"trollllm/csrf/v1:"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def issue_token(state: AppState, user: User) -> str:
    """A signed JWT for `user`: `sub` = user id, `ver` = token version, expiring after the configured TTL.

    `jti` makes every session's token (and so its CSRF token) distinct, even two in the same second.
    """
    now = state.clock.now()
    claims = {
        "sub": str(user.id),
        "ver": user.token_version,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=state.settings.jwt_ttl_s)).timestamp()),
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(claims, state.jwt_key, algorithm=JWT_ALGORITHM)


def cookie_name(settings: Settings, name: str) -> str:
    """`name` as the browser stores it: `__Host-` prefixed when cookies are `Secure`."""
    return SECURE_COOKIE_PREFIX + name if settings.secure_cookies else name


def session_cookie(request: Request) -> str | None:
    """The session token the browser sent in its cookie, if any."""
    return request.cookies.get(cookie_name(get_state(request).settings, SESSION_COOKIE)) or None


def session_csrf_token(state: AppState, session_token: str) -> str:
    """The CSRF token bound to a session: an HMAC of its JWT under the server's key."""
    digest = hmac.new(state.jwt_key, _CSRF_CONTEXT + session_token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def set_session_cookies(state: AppState, response: Response, token: str) -> None:
    """The HttpOnly session cookie for pages, and the readable CSRF cookie (bound to it) pages echo."""
    max_age = state.settings.jwt_ttl_s
    secure = state.settings.secure_cookies
    response.set_cookie(
        cookie_name(state.settings, SESSION_COOKIE),
        token,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )
    response.set_cookie(
        cookie_name(state.settings, CSRF_COOKIE),
        session_csrf_token(state, token),
        max_age=max_age,
        httponly=False,
        samesite="strict",
        secure=secure,
        path="/",
    )


def clear_session_cookies(settings: Settings, response: Response) -> None:
    """Log the browser out (a `__Host-` cookie is only replaced by a `Secure` one, so say it again)."""
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(cookie_name(settings, name), path="/", secure=settings.secure_cookies)


@dataclass(frozen=True, slots=True)
class _Credential:
    token: str
    from_cookie: bool


def _credential(request: Request) -> _Credential | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return _Credential(value.strip(), from_cookie=False)
    cookie = session_cookie(request)
    if cookie:
        return _Credential(cookie, from_cookie=True)
    return None


def _check_csrf(request: Request, state: AppState, session_token: str) -> None:
    if request.method in _SAFE_METHODS:
        return
    presented = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(presented.encode(), session_csrf_token(state, session_token).encode()):
        raise CsrfFailed()


async def current_user(request: Request) -> User:
    """The authenticated, active user of a dashboard API request (401 otherwise)."""
    return await authenticated_user(request)


async def authenticated_user(request: Request, *, form_csrf_checked: bool = False) -> User:
    """The authenticated, active user of `request` (401 otherwise).

    A write authenticated by the session cookie must echo the session's CSRF token in the `x-csrf-token`
    header; a plain HTML form cannot send headers, so the page that has checked the form's own CSRF field
    says so with `form_csrf_checked`.
    """
    state = get_state(request)
    credential = _credential(request)
    if credential is None:
        raise Unauthenticated()
    try:
        claims = jwt.decode(
            credential.token,
            state.jwt_key,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["sub", "exp", "iat", "ver"], "verify_exp": False, "verify_iat": False},
        )
        user_id = int(claims["sub"])
        version = int(claims["ver"])
        expires = int(claims["exp"])
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise Unauthenticated("Invalid or expired token") from exc
    # Expiry is checked against the injected clock, not the wall clock, so tests can move time.
    if expires <= int(state.clock.now().timestamp()):
        raise Unauthenticated("Invalid or expired token")
    if credential.from_cookie and not form_csrf_checked:
        _check_csrf(request, state, credential.token)
    async with state.sessions() as session:
        user = await session.scalar(select(User).where(User.id == user_id))
    if user is None or user.token_version != version:
        raise Unauthenticated("Invalid or expired token")
    if not user.is_active:
        raise Unauthenticated("Account is inactive")
    return user


async def current_admin(user: Annotated[User, Depends(current_user)]) -> User:
    """The current user, who must be an admin (403 otherwise); the role is read from the database."""
    if user.role != "admin":
        raise Forbidden("Admin access required")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
CurrentAdmin = Annotated[User, Depends(current_admin)]
