"""Sending the outbox (`alert_deliveries`): every due delivery is tried, then marked delivered, or put off
with backoff (30 s doubling to an hour; failed after 12 tries). A delivery is marked only after its
attempt, so a process killed in between sends it again: at least once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.alerts.smtp import EmailFailed, send_email
from trollllm.alerts.tables import AlertDelivery, AlertSettings, Notification
from trollllm.alerts.targets import TargetRefused
from trollllm.alerts.webhooks import WEBHOOK_TIMEOUT_S, WebhookFailed, post_webhook, webhook_secret_context
from trollllm.crypto import KeyBox
from trollllm.db import transaction

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger("trollllm.alerts")

BATCH = 100
MAX_ATTEMPTS = 12
FIRST_RETRY_S = 30
LAST_RETRY_S = 3600


@dataclass(frozen=True, slots=True)
class Channels:
    """What sending needs: the SMTP server (None: no email), the sender, the key box, the address rule."""

    smtp_url: str | None
    sender: str
    keybox: KeyBox
    allow_private: bool


class _Undeliverable(Exception):
    """Not worth retrying: the address is refused, or the user changed or removed the target."""


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try."""
    return timedelta(seconds=min(FIRST_RETRY_S * 2 ** (attempts - 1), LAST_RETRY_S))


async def deliver_due(sessions: async_sessionmaker[AsyncSession], channels: Channels, now: datetime) -> int:
    """Try every delivery due at `now` (in batches); returns how many were delivered."""
    due = await _due(sessions, now)
    if not due:
        return 0
    # Here, not at import, and only with something to send: a serving process whose users set no webhook
    # never loads httpx (~5 MB with its CLI's imports).
    import httpx

    delivered = 0
    async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S, follow_redirects=False) as client:
        while True:
            for row in due:
                delivered += await _attempt(sessions, channels, client, row, now)
            if len(due) < BATCH:
                return delivered
            due = await _due(sessions, now)


@dataclass(frozen=True, slots=True)
class _Due:
    id: int
    user_id: int
    channel: str
    target: str
    body: str
    attempts: int
    webhook_url: str | None
    sealed_secret: bytes | None
    email: str | None


async def _due(sessions: async_sessionmaker[AsyncSession], now: datetime) -> list[_Due]:
    async with sessions() as session:
        rows = await session.execute(
            select(
                AlertDelivery.id,
                Notification.user_id,
                AlertDelivery.channel,
                AlertDelivery.target,
                AlertDelivery.body,
                AlertDelivery.attempts,
                AlertSettings.webhook_url,
                AlertSettings.webhook_secret_encrypted,
                AlertSettings.email,
            )
            .join(Notification, Notification.id == AlertDelivery.notification_id)
            .outerjoin(AlertSettings, AlertSettings.user_id == Notification.user_id)
            .where(AlertDelivery.state == "pending", AlertDelivery.next_attempt_at <= now)
            .order_by(AlertDelivery.id)
            .limit(BATCH)
        )
        return [_Due(*row) for row in rows]


async def _attempt(
    sessions: async_sessionmaker[AsyncSession],
    channels: Channels,
    client: httpx.AsyncClient,
    row: _Due,
    now: datetime,
) -> int:
    try:
        await _send(channels, client, row, now)
    except _Undeliverable as exc:
        await _record(sessions, row.id, state="failed", attempts=row.attempts + 1, error=str(exc), now=now)
        logger.warning("alert delivery dropped", extra={"delivery_id": row.id, "reason": str(exc)})
        return 0
    except (EmailFailed, WebhookFailed) as exc:
        attempts = row.attempts + 1
        gave_up = attempts >= MAX_ATTEMPTS
        await _record(
            sessions, row.id, state="failed" if gave_up else "pending", attempts=attempts, error=str(exc),
            now=now + retry_delay(attempts),
        )  # fmt: skip
        logger.warning(
            "alert delivery failed" + ("; given up" if gave_up else "; retried later"),
            extra={"delivery_id": row.id, "channel": row.channel, "attempts": attempts, "error": str(exc)},
        )
        return 0
    await _record(sessions, row.id, state="delivered", attempts=row.attempts + 1, error=None, now=now)
    return 1


async def _send(channels: Channels, client: httpx.AsyncClient, row: _Due, now: datetime) -> None:
    if row.channel == "email":
        if channels.smtp_url is None:
            raise _Undeliverable("no SMTP server is configured")
        if row.email != row.target:
            raise _Undeliverable("the email address was changed or removed")
        message = orjson.loads(row.body)
        await send_email(channels.smtp_url, channels.sender, row.target, message["subject"], message["text"])
        return
    if row.webhook_url != row.target or row.sealed_secret is None:
        raise _Undeliverable("the webhook URL was changed or removed")
    secret = channels.keybox.decrypt(row.sealed_secret, webhook_secret_context(row.user_id))
    try:
        await post_webhook(
            client, row.target, row.body.encode(), secret, int(now.timestamp()), row.id,
            allow_private=channels.allow_private,
        )  # fmt: skip
    except TargetRefused as exc:
        raise _Undeliverable(f"webhook target refused: {exc}") from exc


async def _record(
    sessions: async_sessionmaker[AsyncSession],
    delivery_id: int,
    *,
    state: str,
    attempts: int,
    error: str | None,
    now: datetime,
) -> None:
    values: dict[str, object] = {"state": state, "attempts": attempts, "last_error": error and error[:500]}
    if state == "delivered":
        values["delivered_at"] = now
    else:
        values["next_attempt_at"] = now
    async with transaction(sessions) as session:
        await session.execute(update(AlertDelivery).where(AlertDelivery.id == delivery_id).values(**values))
