"""Registration, login and admin creation."""

from __future__ import annotations

import asyncio

from fastapi import Request
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.accounts.apikeys import IssuedKey, issue_api_key
from trollllm.accounts.tables import User
from trollllm.db import transaction
from trollllm.errors import Conflict, Forbidden, RateLimited, TooManyLoginAttempts, Unauthenticated
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


async def admit_registration(state: AppState, address: str) -> None:
    """Count a registration from `address` against the hourly limit (429 once it is used up)."""
    per_hour = state.settings.register_per_address_per_hour
    if not per_hour:
        return
    decision = await state.limits.hit(f"register:addr:{address}", per_hour, _HOUR_S)
    if not decision.allowed:
        raise RateLimited(
            "Too many registrations from this address", retry_after_s=int(decision.retry_after_s) + 1
        )


async def authenticate(state: AppState, username: str, password: str, client_address: str) -> User:
    """Check a login; throttled per username and per client address (429 once either is exhausted).

    The attempt is counted on both before the password is verified (one atomic hit each), so parallel
    guesses cannot all pass a check made before any of them failed; a correct password then gives the
    attempt back to the address and clears the username's count.
    """
    settings = state.settings
    limit, window_s = settings.login_max_failures, settings.login_window_s
    user_key, address_key = f"login:user:{username.lower()}", f"login:addr:{client_address}"
    decision = await state.limits.hit(user_key, limit, window_s)
    if decision.allowed:
        by_address = await state.limits.hit(address_key, limit, window_s)
        if not by_address.allowed:
            await state.limits.release(user_key)
            decision = by_address
    if not decision.allowed:
        raise TooManyLoginAttempts(retry_after_s=int(decision.retry_after_s + 0.999))
    async with state.sessions() as session:
        user = await find_user(session, username)
    matches = await asyncio.to_thread(state.passwords.verify, user.password_hash if user else None, password)
    if user is None or not matches:
        raise Unauthenticated("Invalid username or password")
    await state.limits.release(address_key)
    await state.limits.reset(user_key)
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
