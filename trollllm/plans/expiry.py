"""Plan expiry and the monthly reset (SPEC §5), on access and in the daily job.

- **Expiry**: past `planExpiresAt` a user goes back to `free`: credits 0 (one `plan_reset` ledger entry for
  what is removed; refCredits untouched), `totalTokens` 0, both plan dates null. The proxy's key lookup
  and login call `expire_plan_if_due`; the daily job calls `expire_due_plans`. A plan expires *at*
  `planExpiresAt` (a request at that very instant is already under free rules).
- **Monthly reset**: at 00:00 UTC on the 1st, `monthlyTokensUsed` = 0 and `monthlyResetDate` = the next
  1st. Lazily (the proxy and the billing endpoints, when they see a passed `monthlyResetDate`) and by the
  job. Every write is a conditional UPDATE, so instances racing on one user reset it exactly once.

Credits that requests in flight hold at the moment of expiry cannot be removed yet (the hold must stay
covered). The reset then removes what is free, leaves `planExpiresAt` set, and the next check (request,
login or job) removes the rest once those requests have settled.

The job runs in every app (`PlanJobSchedule`: a minute after startup, then daily at 00:00 UTC) and as
`trollllm expire-plans`. It runs once across instances (`trollllm.storage.joblock`): on PostgreSQL the
instance holding its advisory lock runs it, the others skip that run (a late one finds nothing left to do).
On SQLite there is one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.accounts.tables import User
from trollllm.billing.leases import CreditLeases, leases_recalled
from trollllm.billing.ledger import PLAN_RESET, apply_adjustment
from trollllm.db import transaction, write_connection
from trollllm.money import Money
from trollllm.plans.calendar import next_month_start
from trollllm.plans.tables import FREE_PLAN
from trollllm.storage.joblock import job_lock

if TYPE_CHECKING:
    from trollllm.state import AppState

logger = logging.getLogger("trollllm.plans.expiry")

EXPIRY_BATCH_SIZE = 500
JOB_FIRST_DELAY = timedelta(seconds=60)
# The daily loop wakes at least this often, so a changed system clock moves the next run accordingly.
JOB_MAX_SLEEP = timedelta(hours=1)
PLAN_JOB = "trollllm:plans:expire-plans"  # its advisory lock (`trollllm.storage.joblock`)
# A scheduled run keeps the lock this long, so instances waking a little later at the same 00:00 skip it.
SCHEDULED_RUN_HOLD = timedelta(seconds=60)
_SYSTEM_ACTOR = "system"


@dataclass(frozen=True, slots=True)
class PlanReset:
    """One expiry: the plan left, the credits removed, and whether in-flight holds kept some back."""

    user_id: int
    old_plan: str
    removed: Money
    complete: bool


@dataclass(frozen=True, slots=True)
class PlanJobReport:
    """What one run of the job did; `ran` is False when another instance held the job's lock."""

    ran: bool
    expired: int = 0
    monthly_resets: int = 0


def plan_has_expired(expires_at: datetime | None, now: datetime) -> bool:
    """True once `now` has reached `expires_at` (never for a plan without an expiry)."""
    return expires_at is not None and expires_at <= now


async def expire_plan(
    sessions: async_sessionmaker[AsyncSession],
    user_id: int,
    now: datetime,
    leases: CreditLeases | None = None,
) -> PlanReset | None:
    """Reset `user_id` to free if their plan has expired at `now`; None when it has not (or is gone).

    One short transaction that opens with the conditional write, so two instances (or a request and the
    job) expiring one user at once reset it once: the second finds nothing due. The user's credit lease
    here gives back what it has free first (`leases`), so only open requests keep credits from expiring.
    """
    async with leases_recalled(leases, [user_id]), transaction(sessions) as session:
        row = (
            await session.execute(
                update(User)
                .where(User.id == user_id, User.plan_expires_at.is_not(None), User.plan_expires_at <= now)
                .values(total_tokens=0, plan_start_date=None)
                .returning(
                    User.plan,
                    User.plan_expires_at,
                    User.credits_nanos,
                    User.ref_credits_nanos,
                    User.held_nanos,
                )
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if row is None:
            return None
        old_plan, expired_at, credits, ref_credits, held = row
        removable = min(credits, max(credits + ref_credits - held, 0))
        if removable:
            await apply_adjustment(
                session,
                user_id=user_id,
                credits_delta=Money(-removable),
                ref_credits_delta=Money.ZERO,
                kind=PLAN_RESET,
                reason=f"plan {old_plan} expired at {expired_at}: credits removed",
                actor=_SYSTEM_ACTOR,
                when=now,
            )
        complete = removable == credits
        values: dict[str, Any] = {"plan": FREE_PLAN}
        if complete:
            values["plan_expires_at"] = None
        await session.execute(
            update(User)
            .where(User.id == user_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    reset = PlanReset(user_id=user_id, old_plan=old_plan, removed=Money(removable), complete=complete)
    if complete:
        logger.info("plan expired", extra={"user_id": user_id, "plan": old_plan})
    else:
        logger.warning(
            "plan expired while requests were in flight; the credits they hold are removed later",
            extra={"user_id": user_id, "plan": old_plan, "held": Money(credits - removable).format_cost()},
        )
    return reset


async def expire_plan_if_due(state: AppState, user_id: int, expires_at: datetime | None) -> bool:
    """Expire the plan when `expires_at` (as just read with the user) has passed; True when it had.

    Costs nothing but a comparison when it has not: the proxy calls this on every request.
    """
    now = state.clock.now()
    if not plan_has_expired(expires_at, now):
        return False
    await expire_plan(state.sessions, user_id, now, state.leases)
    return True


async def expire_due_plans(
    sessions: async_sessionmaker[AsyncSession],
    now: datetime,
    *,
    batch_size: int = EXPIRY_BATCH_SIZE,
    stop: asyncio.Event | None = None,
    leases: CreditLeases | None = None,
) -> int:
    """Expire every plan whose `planExpiresAt` has passed, one short transaction per user; returns how many.

    Once `stop` is set, returns after the current user (the rest wait for the next run).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    expired = 0
    after_id = 0
    while stop is None or not stop.is_set():
        async with sessions() as session:
            due = (
                await session.scalars(
                    select(User.id)
                    .where(User.plan_expires_at <= now, User.id > after_id)
                    .order_by(User.id)
                    .limit(batch_size)
                )
            ).all()
        for user_id in due:
            if stop is not None and stop.is_set():
                break
            if await expire_plan(sessions, user_id, now, leases) is not None:
                expired += 1
        if len(due) < batch_size:
            break
        after_id = due[-1]
    return expired


async def reset_monthly_usage(
    sessions: async_sessionmaker[AsyncSession], now: datetime, *, user_id: int | None = None
) -> int:
    """Zero `monthlyTokensUsed` where `monthlyResetDate` has passed (of one user, or of all); returns how
    many users were reset. The next reset date is the 1st of the month after `now`, 00:00 UTC.
    """
    statement = (
        update(User)
        .where(or_(User.monthly_reset_date.is_(None), User.monthly_reset_date <= now))
        .values(monthly_tokens_used=0, monthly_reset_date=next_month_start(now))
    )
    if user_id is not None:
        statement = statement.where(User.id == user_id)
    async with write_connection(sessions) as connection:
        return int((await connection.execute(statement)).rowcount)


async def run_plan_jobs(
    state: AppState, *, stop: asyncio.Event | None = None, hold_at_least: timedelta = timedelta(0)
) -> PlanJobReport:
    """One run of the daily job: expire passed plans, then reset monthly counters whose date has passed.

    Runs once across instances: on PostgreSQL only the holder of the job's advisory lock runs it (kept at
    least `hold_at_least`); the others return `ran=False`.
    """
    lock = job_lock(state.engine, PLAN_JOB, hold_at_least_s=hold_at_least.total_seconds(), stop=stop)
    async with lock as acquired:
        if not acquired:
            logger.info("plan job skipped: another instance is running it")
            return PlanJobReport(ran=False)
        now = state.clock.now()
        expired = await expire_due_plans(state.sessions, now, stop=stop, leases=state.leases)
        resets = await reset_monthly_usage(state.sessions, now)
    if expired or resets:
        logger.info("plan job done", extra={"plans_expired": expired, "monthly_resets": resets})
    return PlanJobReport(ran=True, expired=expired, monthly_resets=resets)


def next_daily_run(now: datetime) -> datetime:
    """The next 00:00 UTC strictly after `now`: when plans bought at any time of day have all expired and,
    on the 1st, monthly counters reset."""
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class PlanJobSchedule:
    """The job inside a running app: `JOB_FIRST_DELAY` after startup, then at every 00:00 UTC.

    Stopping it lets a run in progress finish its current transaction, then ends it.
    """

    def __init__(self, state: AppState, *, first_delay: timedelta = JOB_FIRST_DELAY) -> None:
        self._state = state
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._loop(first_delay))

    async def _loop(self, first_delay: timedelta) -> None:
        await asyncio.sleep(first_delay.total_seconds())
        clock = self._state.clock
        due = clock.now()
        while True:
            now = clock.now()
            if now >= due:
                current = asyncio.create_task(self._run_once())
                try:
                    await asyncio.shield(current)
                except asyncio.CancelledError:
                    self._stop.set()
                    await current
                    raise
                now = clock.now()
                due = next_daily_run(now)
            elif due - now > timedelta(days=1):  # the clock went back: run at the next midnight instead
                due = next_daily_run(now)
            await asyncio.sleep(min(due - now, JOB_MAX_SLEEP).total_seconds())

    async def _run_once(self) -> None:
        try:
            await run_plan_jobs(self._state, stop=self._stop, hold_at_least=SCHEDULED_RUN_HOLD)
        except Exception:
            logger.exception("plan expiry job failed; it runs again at the next 00:00 UTC")

    async def stop(self) -> None:
        """Cancel the loop and wait for it (a run in progress ends after its current transaction)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
