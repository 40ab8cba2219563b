"""Account endpoints: register, login, logout, and the user's own profile and API key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from trollllm.accounts.apikeys import live_api_key, reveal_api_key, rotate_api_key
from trollllm.accounts.invites import Invite
from trollllm.accounts.schemas import (
    LoginCredentials,
    Registration,
    RevealedKey,
    RotatedKey,
    SessionView,
    UserView,
)
from trollllm.accounts.service import admit_registration, authenticate, client_address, create_user
from trollllm.accounts.sessions import (
    CurrentUser,
    clear_session_cookies,
    issue_token,
    set_session_cookies,
)
from trollllm.accounts.tables import User
from trollllm.db import transaction
from trollllm.errors import RateLimited
from trollllm.payments.registration import welcome_new_user
from trollllm.state import get_state

router = APIRouter(tags=["accounts"])

_HOUR_S = 3600


@router.post("/api/auth/register", status_code=201, response_model=SessionView)
async def register(body: Registration, request: Request, response: Response) -> SessionView:
    """Create an account on the free plan with an API key; answers a JWT and sets the session cookie.

    `TROLLLLM_REGISTRATION` may close registration (403 `registration_closed`) or ask for an invite
    (403 `invite_required` without a valid `referralCode` or `redemptionCode`).
    """
    state = get_state(request)
    invite = Invite(referral_code=body.referralCode, redemption_code=body.redemptionCode)
    await admit_registration(state, client_address(request), invite)
    user, issued = await create_user(state, body.username, body.password)
    await welcome_new_user(state, user.id, body.referralCode or body.redemptionCode, client_address(request))
    token = issue_token(state, user)
    set_session_cookies(state, response, token)
    return SessionView(token=token, user=UserView.of(user, issued.row))


@router.post("/api/auth/login", response_model=SessionView)
async def login(body: LoginCredentials, request: Request, response: Response) -> SessionView:
    """Exchange username and password for a JWT (also set as an HttpOnly cookie for pages)."""
    state = get_state(request)
    user = await authenticate(state, body.username, body.password, client_address(request))
    token = issue_token(state, user)
    set_session_cookies(state, response, token)
    async with state.sessions() as session:
        key = await live_api_key(session, user.id)
    return SessionView(token=token, user=UserView.of(user, key))


@router.post("/api/auth/logout", status_code=204)
async def logout(request: Request) -> Response:
    """Clear the browser session cookies (a Bearer token simply expires)."""
    response = Response(status_code=204)
    clear_session_cookies(get_state(request).settings, response)
    return response


@router.get("/api/user/me", response_model=UserView)
async def me(user: CurrentUser, request: Request) -> UserView:
    """The caller's profile, balances and counters; the key is masked."""
    async with get_state(request).sessions() as session:
        key = await live_api_key(session, user.id)
    return UserView.of(user, key)


@router.get("/api/user/api-key", response_model=RevealedKey)
async def reveal_key(user: CurrentUser, request: Request) -> RevealedKey:
    """The caller's full API key; at most a configured number of reveals per hour (429 after)."""
    state = get_state(request)
    decision = await state.limits.hit(f"reveal:{user.id}", state.settings.key_reveals_per_hour, _HOUR_S)
    if not decision.allowed:
        raise RateLimited(
            "Too many key reveals; try again later", retry_after_s=int(decision.retry_after_s) + 1
        )
    async with state.sessions() as session:
        return RevealedKey(apiKey=await reveal_api_key(session, state, user))


@router.post("/api/user/api-key/rotate", response_model=RotatedKey)
async def rotate_key(user: CurrentUser, request: Request) -> RotatedKey:
    """Replace the caller's key; the old one is rejected from the very next request."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        locked = await session.get_one(User, user.id, with_for_update=True)
        issued = await rotate_api_key(session, state, locked)
    return RotatedKey(newApiKey=issued.key, createdAt=issued.row.created_at)
