"""What the admin's user page shows of one user's activity: keys (masked), usage by model, the ledger
and the latest requests.

Read-only; every key appears only masked (`****...****` + last 4), never decrypted. Usage by model comes
from the request logs of the last `USAGE_DAYS` days (the logs are the only per-user, per-model record;
older ones may be purged), and the all-time totals from the user's own counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.accounts.apikeys import live_api_key
from trollllm.accounts.tables import User
from trollllm.billing.tables import LedgerEntry
from trollllm.byok.tables import ProviderKey
from trollllm.crypto import mask_key
from trollllm.friendkeys.tables import FriendKey
from trollllm.usage.history import LogPage, PageParams, page_request_logs
from trollllm.usage.tables import RequestLog

USAGE_DAYS = 30
LEDGER_ROWS = 20
RECENT_REQUESTS = 10


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One of the user's keys as the admin sees it."""

    kind: str
    masked: str
    state: str
    since: datetime | None


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """One model's requests, tokens and spend in the usage window."""

    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    spend_nanos: int


@dataclass(frozen=True, slots=True)
class UserActivity:
    """Everything the user page lists below the account figures."""

    keys: list[KeyRow]
    usage: list[ModelUsage]
    usage_since: datetime
    ledger: list[LedgerEntry]
    ledger_total: int
    requests: LogPage


async def _keys(session: AsyncSession, user_id: int) -> list[KeyRow]:
    keys: list[KeyRow] = []
    api_key = await live_api_key(session, user_id)
    if api_key is not None:
        keys.append(KeyRow("API key", mask_key(api_key.last4), "live", api_key.created_at))
    friend = await session.scalar(select(FriendKey).where(FriendKey.owner_id == user_id))
    if friend is not None:
        state = "active" if friend.is_active else "paused"
        keys.append(KeyRow("Friend Key", mask_key(friend.last4), state, friend.created_at))
    own = await session.scalars(
        select(ProviderKey).where(ProviderKey.user_id == user_id).order_by(ProviderKey.provider)
    )
    keys += [KeyRow(f"Own {row.provider} key", f"****{row.last4}", row.status, row.added_at) for row in own]
    return keys


async def _usage(session: AsyncSession, user_id: int, since: datetime) -> list[ModelUsage]:
    log = RequestLog
    spend = func.coalesce(func.sum(log.credits_cost_nanos), 0)
    rows = await session.execute(
        select(
            log.model,
            func.count(),
            func.coalesce(func.sum(log.input_tokens), 0),
            func.coalesce(func.sum(log.output_tokens), 0),
            spend,
        )
        .where(log.user_id == user_id, log.created_at >= since)
        .group_by(log.model)
        .order_by(spend.desc(), func.count().desc(), log.model)
    )
    return [ModelUsage(str(model), *(int(value or 0) for value in sums)) for model, *sums in rows]


async def user_activity(session: AsyncSession, user: User, now: datetime) -> UserActivity:
    """The keys, the last `USAGE_DAYS` days by model, the latest ledger entries and requests of `user`."""
    since = now - timedelta(days=USAGE_DAYS)
    ledger = list(
        await session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.user_id == user.id)
            .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
            .limit(LEDGER_ROWS)
        )
    )
    counted = select(func.count()).select_from(LedgerEntry).where(LedgerEntry.user_id == user.id)
    ledger_total = int(await session.scalar(counted) or 0)
    return UserActivity(
        keys=await _keys(session, user.id),
        usage=await _usage(session, user.id, since),
        usage_since=since,
        ledger=ledger,
        ledger_total=ledger_total,
        requests=await page_request_logs(session, PageParams(limit=RECENT_REQUESTS), user_id=user.id),
    )
