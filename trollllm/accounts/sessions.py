"""Dashboard sessions: JWTs (Bearer or cookie), CSRF for cookie writes, and the current-user dependency.

A token carries the user id and a token version; every request re-reads the user, so a demotion,
deactivation or password change takes effect at once.
"""

from __future__ import annotations

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
from trollllm.state import AppState, get_state

JWT_ALGORITHM = "HS256"
SESSION_COOKIE = "trollllm_session"
CSRF_COOKIE = "trollllm_csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def issue_token(state: AppState, user: User) -> str:
    """A signed JWT for `user`: `sub` = user id, `ver` = token version, expiring after the configured TTL."""
    now = state.clock.now()
    claims = {
        "sub": str(user.id),
        "ver": user.token_version,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=state.settings.jwt_ttl_s)).timestamp()),
    }
    return jwt.encode(claims, state.jwt_key, algorithm=JWT_ALGORITHM)


def set_session_cookies(state: AppState, response: Response, token: str) -> None:
    """The HttpOnly session cookie for pages, and the readable CSRF cookie that pages echo in a header."""
    max_age = state.settings.jwt_ttl_s
    secure = state.settings.cookie_secure
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/"
    )
    response.set_cookie(
        CSRF_COOKIE,
        secrets.token_urlsafe(24),
        max_age=max_age,
        httponly=False,
        samesite="strict",
        secure=secure,
        path="/",
    )


def clear_session_cookies(response: Response) -> None:
    """Log the browser out."""
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


@dataclass(frozen=True, slots=True)
class _Credential:
    token: str
    from_cookie: bool


def _credential(request: Request) -> _Credential | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return _Credential(value.strip(), from_cookie=False)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return _Credential(cookie, from_cookie=True)
    return None


def _check_csrf(request: Request) -> None:
    if request.method in _SAFE_METHODS:
        return
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not hmac.compare_digest(cookie, header):
        raise CsrfFailed()


async def current_user(request: Request) -> User:
    """The authenticated, active user of a dashboard API request (401 otherwise)."""
    return await authenticated_user(request)


async def authenticated_user(request: Request, *, form_csrf_checked: bool = False) -> User:
    """The authenticated, active user of `request` (401 otherwise).

    A write authenticated by the session cookie must echo the CSRF cookie in the `x-csrf-token` header;
    a plain HTML form cannot send headers, so the page that has compared the form's own CSRF field with
    the cookie says so with `form_csrf_checked`.
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
        _check_csrf(request)
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
