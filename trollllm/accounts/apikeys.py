"""The user's own gateway API key: issue, reveal and rotate (one live key per user)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.accounts.tables import ApiKey, User
from trollllm.crypto import new_user_key
from trollllm.errors import NotFound
from trollllm.state import AppState


def api_key_context(user_id: int) -> str:
    """The associated data of a user's key copy (kept for reveal)."""
    return f"api_key:{user_id}"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created: the full key (shown once in this response) and its row."""

    key: str
    row: ApiKey


async def issue_api_key(session: AsyncSession, state: AppState, user: User) -> IssuedKey:
    """Create a live key for `user` (the caller has revoked any previous one in this transaction)."""
    key = new_user_key()
    row = ApiKey(
        user_id=user.id,
        key_digest=state.keybox.digest(key),
        key_encrypted=state.keybox.encrypt(key, api_key_context(user.id)),
        last4=key[-4:],
        created_at=state.clock.now(),
    )
    session.add(row)
    await session.flush()
    return IssuedKey(key, row)


async def live_api_key(session: AsyncSession, user_id: int) -> ApiKey | None:
    """The user's live key row, if any."""
    return await session.scalar(select(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)))


async def revoke_api_keys(session: AsyncSession, user_id: int, when: datetime) -> int:
    """Revoke every live key of a user; returns how many were revoked."""
    result = await session.execute(
        update(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)).values(revoked_at=when)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def rotate_api_key(session: AsyncSession, state: AppState, user: User) -> IssuedKey:
    """Revoke the live key and issue a new one, in the caller's transaction."""
    await revoke_api_keys(session, user.id, state.clock.now())
    return await issue_api_key(session, state, user)


async def reveal_api_key(session: AsyncSession, state: AppState, user: User) -> str:
    """The full live key of `user`, decrypted (rate limited by the route)."""
    row = await live_api_key(session, user.id)
    if row is None:
        raise NotFound("You have no active API key; rotate to create one")
    return state.keybox.decrypt(row.key_encrypted, api_key_context(user.id))
