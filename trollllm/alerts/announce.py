"""Announcing crossings exactly once: the condition's key goes into `alert_states` (INSERT … ON CONFLICT DO
NOTHING) in the same transaction as its notifications and their deliveries, so two instances (or a pass
repeated after a crash) announce a crossing once, and a crossing recorded is never without its deliveries.
A condition no longer in force loses its key, which re-arms it."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.accounts.tables import User
from trollllm.alerts.rules import OUTBOX_KEY_PREFIX, Condition
from trollllm.alerts.tables import AlertDelivery, AlertSettings, AlertState, Notification
from trollllm.db import transaction

_DELETE_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who hears of an alert, and on which channels."""

    user_id: int
    username: str
    email: str | None
    webhook_url: str | None


async def recipients(session: AsyncSession, user_ids: Collection[int]) -> dict[int | None, list[Recipient]]:
    """The recipients of user alerts (by user id) and of operator alerts (key None: every active admin)."""
    rows = await session.execute(
        select(User.id, User.username, User.role, AlertSettings.email, AlertSettings.webhook_url)
        .outerjoin(AlertSettings, AlertSettings.user_id == User.id)
        .where(User.is_active.is_(True), (User.id.in_(list(user_ids))) | (User.role == "admin"))
    )
    found: dict[int | None, list[Recipient]] = {None: []}
    for user_id, username, role, email, webhook_url in rows:
        recipient = Recipient(user_id, username, email, webhook_url)
        if user_id in user_ids:
            found[user_id] = [recipient]
        if role == "admin":
            found[None].append(recipient)
    return found


def webhook_body(condition: Condition, username: str, now: datetime) -> str:
    """The webhook's JSON: `{type, user, data, createdAt}` (SPEC §11)."""
    return orjson.dumps(
        {"type": condition.type, "user": username, "data": condition.data, "createdAt": now.isoformat()}
    ).decode()


def email_body(condition: Condition, username: str) -> str:
    """The email's subject and text, stored as JSON."""
    details = "\n".join(f"  {name}: {value}" for name, value in condition.data.items())
    text = f"Hello {username},\n\n{condition.message}.\n\n{details}\n\n-- TrollLLM\n"
    return orjson.dumps({"subject": f"TrollLLM alert: {condition.message}"[:200], "text": text}).decode()


def _insert_state(dialect: str, key: str, now: datetime) -> object:
    module = postgresql if dialect == "postgresql" else sqlite
    return (
        module.insert(AlertState).values(key=key, fired_at=now).on_conflict_do_nothing(index_elements=["key"])
    )


async def mark_announced(
    sessions: async_sessionmaker[AsyncSession], keys: Sequence[str], now: datetime
) -> None:
    """Record conditions as announced without telling anyone (lower thresholds passed with a higher one)."""
    if not keys:
        return
    dialect = sessions.kw["bind"].dialect.name
    async with transaction(sessions) as session:
        for key in keys:
            await session.execute(_insert_state(dialect, key, now))  # type: ignore[call-overload]


async def announce(
    sessions: async_sessionmaker[AsyncSession],
    condition: Condition,
    to: Sequence[Recipient],
    now: datetime,
    *,
    email_enabled: bool,
) -> bool:
    """Record the crossing with a notification and its deliveries for each recipient, once: False when
    it was already announced."""
    dialect = sessions.kw["bind"].dialect.name
    async with transaction(sessions) as session:
        result = await session.execute(_insert_state(dialect, condition.key, now))  # type: ignore[call-overload]
        if result.rowcount != 1:
            return False
        data = orjson.dumps(condition.data).decode()
        for recipient in to:
            notification = Notification(
                user_id=recipient.user_id,
                type=condition.type,
                message=condition.message[:500],
                data=data,
                created_at=now,
            )
            session.add(notification)
            await session.flush()
            channels: list[tuple[str, str, str]] = []
            if recipient.email and email_enabled:
                channels.append(("email", recipient.email, email_body(condition, recipient.username)))
            if recipient.webhook_url:
                channels.append(
                    ("webhook", recipient.webhook_url, webhook_body(condition, recipient.username, now))
                )
            for channel, target, body in channels:
                session.add(
                    AlertDelivery(
                        notification_id=notification.id,
                        channel=channel,
                        target=target,
                        body=body,
                        state="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
    return True


async def announced_keys(session: AsyncSession) -> set[str]:
    """The conditions announced and (as last seen) still in force."""
    return set(await session.scalars(select(AlertState.key)))


async def rearm(
    sessions: async_sessionmaker[AsyncSession], announced: Collection[str], in_force: Collection[str]
) -> int:
    """Forget the announced conditions no longer in force (the per-instance outbox keys excepted: each
    instance clears its own). Returns how many were re-armed."""
    stale = sorted(key for key in set(announced) - set(in_force) if not key.startswith(OUTBOX_KEY_PREFIX))
    for start in range(0, len(stale), _DELETE_CHUNK):
        chunk = stale[start : start + _DELETE_CHUNK]
        async with transaction(sessions) as session:
            await session.execute(delete(AlertState).where(AlertState.key.in_(chunk)))
    return len(stale)


async def clear(sessions: async_sessionmaker[AsyncSession], key: str) -> None:
    """Forget one announced condition (it is no longer in force)."""
    async with transaction(sessions) as session:
        await session.execute(delete(AlertState).where(AlertState.key == key))
