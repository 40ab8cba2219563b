"""Friend Key management: create, read, rotate, pause, delete, and set the per-model caps.

Each write is one short transaction whose first statement is a write. Rows are touched in the order the
money path uses (a model's cap row before the key row), so an edit here and a settlement in flight can
never deadlock on PostgreSQL. The proxy reads the key row on every request (no cache), so a rotation,
pause or deletion applies to the very next request on every instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.accounts.tables import User
from trollllm.crypto import new_friend_key
from trollllm.db import transaction
from trollllm.errors import Conflict, NotFound
from trollllm.friendkeys.resets import next_reset_after
from trollllm.friendkeys.schemas import LimitInput
from trollllm.friendkeys.tables import FriendKey, FriendKeyModelLimit
from trollllm.pricing.tables import LlmModel
from trollllm.state import AppState

NO_FRIEND_KEY = "You have no Friend Key; create one first"
NO_COPY = "This Friend Key was made before the gateway kept a copy to show; rotate it to get one"


@dataclass(frozen=True, slots=True)
class FriendKeyState:
    """A key row and its cap rows (by model id)."""

    key: FriendKey
    limits: Sequence[FriendKeyModelLimit]


@dataclass(frozen=True, slots=True)
class IssuedFriendKey:
    """A key just created: the full key (shown once) and its row."""

    full_key: str
    key: FriendKey


def friend_key_context(owner_id: int) -> str:
    """The associated data of a Friend Key's encrypted copy (kept for Show and Copy)."""
    return f"friend_key:{owner_id}"


async def create_friend_key(state: AppState, owner_id: int) -> IssuedFriendKey:
    """A new active key without caps (so it can call nothing yet); 409 if the owner already has one."""
    full_key = new_friend_key()
    row = FriendKey(
        owner_id=owner_id,
        key_digest=state.keybox.digest(full_key),
        last4=full_key[-4:],
        key_encrypted=state.keybox.encrypt(full_key, friend_key_context(owner_id)),
        is_active=True,
        total_used_nanos=0,
        requests_count=0,
        created_at=state.clock.now(),
    )
    try:
        async with transaction(state.sessions) as session:
            session.add(row)
            await session.flush()
    except IntegrityError as exc:  # owner_id is unique: a concurrent create lost the race
        raise Conflict("You already have a Friend Key; rotate it to get a new one") from exc
    return IssuedFriendKey(full_key, row)


async def load_friend_key(session: AsyncSession, owner_id: int) -> FriendKeyState:
    """The owner's key and caps; 404 if there is none."""
    key = await session.scalar(select(FriendKey).where(FriendKey.owner_id == owner_id))
    if key is None:
        raise NotFound(NO_FRIEND_KEY)
    limits = (
        await session.scalars(
            select(FriendKeyModelLimit)
            .where(FriendKeyModelLimit.friend_key_id == key.id)
            .order_by(FriendKeyModelLimit.model_id)
        )
    ).all()
    return FriendKeyState(key, limits)


async def rotate_friend_key(state: AppState, owner_id: int) -> str:
    """Give the key a new secret (same caps and counters); the old secret matches nothing from now on."""
    full_key = new_friend_key()
    async with transaction(state.sessions) as session:
        result = await session.execute(
            update(FriendKey)
            .where(FriendKey.owner_id == owner_id)
            .values(
                key_digest=state.keybox.digest(full_key),
                last4=full_key[-4:],
                key_encrypted=state.keybox.encrypt(full_key, friend_key_context(owner_id)),
            )
            .execution_options(synchronize_session=False)
        )
        if not getattr(result, "rowcount", 0):
            raise NotFound(NO_FRIEND_KEY)
    return full_key


async def reveal_friend_key(state: AppState, owner_id: int) -> str:
    """The owner's full Friend Key, decrypted (rate limited by the route); 404 without a key, and 409 for a
    key made before copies were kept (rotating gives it one)."""
    async with state.sessions() as session:
        found = (
            await session.execute(select(FriendKey.key_encrypted).where(FriendKey.owner_id == owner_id))
        ).first()
    if found is None:
        raise NotFound(NO_FRIEND_KEY)
    if found.key_encrypted is None:
        raise Conflict(NO_COPY)
    return state.keybox.decrypt(bytes(found.key_encrypted), friend_key_context(owner_id))


class _Keep:
    """A field left out of an update."""


KEEP = _Keep()


async def update_friend_key(
    state: AppState, owner_id: int, active: bool | None, expires_at: datetime | _Keep | None
) -> None:
    """Pause or resume the key (`active`; None: as it is) and set or clear its expiry (`KEEP`: as it is)."""
    values: dict[str, object] = {}
    if active is not None:
        values["is_active"] = active
    if not isinstance(expires_at, _Keep):
        values["expires_at"] = expires_at
    async with transaction(state.sessions) as session:
        result = await session.execute(
            update(FriendKey)
            .where(FriendKey.owner_id == owner_id)
            .values(**values or {"is_active": FriendKey.is_active})
            .execution_options(synchronize_session=False)
        )
        if not getattr(result, "rowcount", 0):
            raise NotFound(NO_FRIEND_KEY)


async def delete_friend_key(state: AppState, owner_id: int) -> None:
    """Delete the key and its caps; its request logs stay in the owner's history."""
    key_of_owner = select(FriendKey.id).where(FriendKey.owner_id == owner_id).scalar_subquery()
    async with transaction(state.sessions) as session:
        await session.execute(
            delete(FriendKeyModelLimit)
            .where(FriendKeyModelLimit.friend_key_id == key_of_owner)
            .execution_options(synchronize_session=False)
        )
        result = await session.execute(
            delete(FriendKey)
            .where(FriendKey.owner_id == owner_id)
            .execution_options(synchronize_session=False)
        )
        if not getattr(result, "rowcount", 0):
            raise NotFound(NO_FRIEND_KEY)


async def enabled_model_ids(state: AppState) -> set[str]:
    """Models a cap may name: the enabled ones, read from the database (not the proxy's cache)."""
    async with state.sessions() as session:
        return set((await session.scalars(select(LlmModel.model_id).where(LlmModel.enabled.is_(True)))).all())


async def set_limits(state: AppState, owner_id: int, rows: Sequence[LimitInput]) -> None:
    """Make the key's caps exactly `rows`: models kept keep `usedUsd` (and open holds), models left out
    lose their cap row, new models start at 0 used."""
    wanted = {row.model_id: row for row in rows}
    now = state.clock.now()
    key_of_owner = select(FriendKey.id).where(FriendKey.owner_id == owner_id).scalar_subquery()
    try:
        async with transaction(state.sessions) as session:
            removed = delete(FriendKeyModelLimit).where(FriendKeyModelLimit.friend_key_id == key_of_owner)
            if wanted:
                removed = removed.where(FriendKeyModelLimit.model_id.not_in(sorted(wanted)))
            await session.execute(removed.execution_options(synchronize_session=False))
            key_id = await session.scalar(select(FriendKey.id).where(FriendKey.owner_id == owner_id))
            if key_id is None:
                raise NotFound(NO_FRIEND_KEY)
            time_zone = await session.scalar(select(User.time_zone).where(User.id == owner_id)) or "UTC"
            for model_id in sorted(wanted):  # one order for every writer of these rows
                row = wanted[model_id]
                next_reset = next_reset_after(row.reset_period, now, time_zone)
                limit = FriendKeyModelLimit
                # A period kept keeps its next reset; a changed one starts from now.
                result = await session.execute(
                    update(limit)
                    .where(limit.friend_key_id == key_id, limit.model_id == model_id)
                    .values(
                        limit_nanos=row.limit.nanos,
                        enabled=row.enabled,
                        next_reset_at=case(
                            (limit.reset_period == row.reset_period, limit.next_reset_at), else_=next_reset
                        ),
                        reset_period=row.reset_period,
                    )
                    .execution_options(synchronize_session=False)
                )
                if not getattr(result, "rowcount", 0):
                    session.add(
                        FriendKeyModelLimit(
                            friend_key_id=key_id,
                            model_id=model_id,
                            limit_nanos=row.limit.nanos,
                            used_nanos=0,
                            held_nanos=0,
                            enabled=row.enabled,
                            reset_period=row.reset_period,
                            next_reset_at=next_reset,
                        )
                    )
            await session.flush()
    except IntegrityError as exc:  # another update of the same key inserted a row first
        raise Conflict("The limits were changed at the same time; reload and save again") from exc
