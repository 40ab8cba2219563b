"""Registration, login and admin creation."""

from __future__ import annotations

import asyncio

from fastapi import Request
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.accounts.apikeys import IssuedKey, issue_api_key
from trollllm.accounts.invites import Invite, check_invite
from trollllm.accounts.login_throttle import admit_login_attempt
from trollllm.accounts.tables import User
from trollllm.db import transaction
from trollllm.errors import (
    Conflict,
    Forbidden,
    InviteRequired,
    RateLimited,
    RegistrationClosed,
    Unauthenticated,
)
from trollllm.plans.calendar import next_month_start
from trollllm.plans.expiry import expire_plan_if_due
from trollllm.plans.tables import FREE_PLAN
from trollllm.state import AppState

_HOUR_S = 3600


async def find_user(session: AsyncSession, username: str) -> User | None:
    """The user with this username (exact match)."""
    return await session.scalar(select(User).where(User.username == username))


async def create_user(
    state: AppState, username: str, password: str, *, role: str = "user"
) -> tuple[User, IssuedKey]:
    """Create a user on the free plan with a fresh API key; 409 if the username is taken."""
    password_hash = await asyncio.to_thread(state.passwords.hash, password)
    now = state.clock.now()
    try:
        async with transaction(state.sessions) as session:
            if await session.scalar(select(func.count()).where(User.username == username)):
                raise Conflict("Username is already taken", field="username")
            user = User(
                username=username,
                password_hash=password_hash,
                role=role,
                plan=FREE_PLAN,
                monthly_reset_date=next_month_start(now),
                created_at=now,
            )
            session.add(user)
            await session.flush()
            issued = await issue_api_key(session, state, user)
    except IntegrityError as exc:  # a concurrent registration won the race
        raise Conflict("Username is already taken", field="username") from exc
    return user, issued


def client_address(request: Request) -> str:
    """The peer address a request came from (the throttles' per-address key)."""
    return request.client.host if request.client else "unknown"


async def admit_registration(state: AppState, address: str, invite: Invite) -> None:
    """Whether a registration from `address` may go on: 403 when registration is closed or needs an invite
    that `invite` is not, 429 once the address has used its registrations of the hour.

    The hour's count comes before the invite check, so it also bounds guessing invites.
    """
    settings = state.settings
    if settings.registration == "closed":
        raise RegistrationClosed()
    per_hour = settings.register_per_address_per_hour
    if per_hour:
        decision = await state.limits.hit(f"register:addr:{address}", per_hour, _HOUR_S)
        if not decision.allowed:
            raise RateLimited(
                "Too many registrations from this address", retry_after_s=int(decision.retry_after_s) + 1
            )
    if settings.registration == "invite":
        async with state.sessions() as session:
            if not await check_invite(session, invite):
                raise InviteRequired(field="redemptionCode" if invite.redemption_code else "referralCode")


async def authenticate(state: AppState, username: str, password: str, client_address: str) -> User:
    """Check a login, throttled per (username, address) and per address (`login_throttle`)."""
    attempt = await admit_login_attempt(state.limits, state.settings, username, client_address)
    async with state.sessions() as session:
        user = await find_user(session, username)
    matches = await asyncio.to_thread(state.passwords.verify, user.password_hash if user else None, password)
    if user is None or not matches:
        raise Unauthenticated("Invalid username or password")
    await attempt.succeeded()
    if not user.is_active:
        raise Forbidden("Account is inactive")
    if await expire_plan_if_due(state, user.id, user.plan_expires_at):  # SPEC §5: expiry at login
        async with state.sessions() as session:
            user = await session.get(User, user.id) or user
    return user


async def ensure_admin(state: AppState, username: str, password: str) -> bool:
    """Create `username` as an admin, or promote it and set its password; True if it was created."""
    async with state.sessions() as session:
        existing = await find_user(session, username)
    if existing is None:
        await create_user(state, username, password, role="admin")
        return True
    password_hash = await asyncio.to_thread(state.passwords.hash, password)
    async with transaction(state.sessions) as session:
        user = await session.get_one(User, existing.id)
        user.role = "admin"
        user.is_active = True
        user.password_hash = password_hash
        user.token_version += 1
    return False
