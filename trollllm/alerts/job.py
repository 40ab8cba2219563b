"""The alerts job: every `TROLLLLM_ALERT_INTERVAL_S`, off the request path. Each instance reports its own
settlement outbox; then the holder of the `trollllm:alerts` job lock (one instance per pass) announces
the crossings, re-arms what no longer holds and sends the due deliveries."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import time
from datetime import datetime, timedelta

from trollllm.alerts.announce import announce, announced_keys, clear, mark_announced, rearm, recipients
from trollllm.alerts.conditions import operator_conditions, user_conditions
from trollllm.alerts.delivery import Channels, deliver_due
from trollllm.alerts.rules import crossings, settlement_outbox_condition
from trollllm.state import AppState
from trollllm.storage.joblock import job_lock

logger = logging.getLogger("trollllm.alerts")

ALERTS_JOB = "trollllm:alerts"
LOCK_HOLD = timedelta(seconds=30)


def channels_of(state: AppState) -> Channels:
    """The channels as configured."""
    smtp = state.settings.smtp_url
    return Channels(
        smtp_url=smtp.get_secret_value() if smtp is not None else None,
        sender=state.settings.alert_from,
        keybox=state.keybox,
        allow_private=state.settings.webhook_allow_private,
    )


async def check_alerts(state: AppState, now: datetime) -> int:
    """Announce every new crossing and re-arm the conditions no longer in force; returns how many were
    announced."""
    async with state.sessions() as session:
        active = await user_conditions(session, now) + await operator_conditions(session, now)
        announced = await announced_keys(session)
        to_announce, silent = crossings(active, announced)
        who = await recipients(session, {c.user_id for c in to_announce if c.user_id is not None})
    await mark_announced(state.sessions, [c.key for c in silent], now)
    email_enabled = state.settings.smtp_url is not None
    count = 0
    for condition in to_announce:
        to = who.get(condition.user_id, [])
        count += await announce(state.sessions, condition, to, now, email_enabled=email_enabled)
    await rearm(state.sessions, announced, {c.key for c in active})
    return count


async def report_outbox(state: AppState, now: datetime) -> None:
    """This instance's settlement outbox: announce it to the admins while it holds settlements, clear
    the alert once it is empty."""
    instance = f"{socket.gethostname()}:{state.outbox.directory.resolve()}"
    instance_key = hashlib.sha256(instance.encode()).hexdigest()[:32]
    depth = await asyncio.to_thread(state.outbox.depth)
    condition = settlement_outbox_condition(instance_key, instance, depth)
    if depth == 0:
        await clear(state.sessions, condition.key)
        return
    async with state.sessions() as session:
        admins = (await recipients(session, ()))[None]
    await announce(state.sessions, condition, admins, now, email_enabled=state.settings.smtp_url is not None)


async def alert_pass(state: AppState, *, stop: asyncio.Event | None = None) -> bool:
    """One scheduled pass of this instance; True when it held the lock and ran the shared steps."""
    try:
        await report_outbox(state, state.clock.now())
    except Exception:
        logger.exception("settlement outbox alert failed")
    hold = min(timedelta(seconds=state.settings.alert_interval_s) / 2, LOCK_HOLD).total_seconds()
    try:
        async with job_lock(state.engine, ALERTS_JOB, hold_at_least_s=hold, stop=stop) as acquired:
            if not acquired:
                return False
            await check_alerts(state, state.clock.now())
            await deliver_due(state.sessions, channels_of(state), state.clock.now())
            return True
    except Exception:
        logger.exception("alerts pass failed")
        return False


async def run_alerts_periodically(state: AppState) -> None:
    """Run a pass every `alert_interval_s` (at wall-clock multiples, so instances meet at the lock; the
    first one a whole interval after start) until cancelled; a cancelled pass finishes its current
    transaction first."""
    interval = state.settings.alert_interval_s
    stop = asyncio.Event()
    await asyncio.sleep(interval)
    while True:
        await asyncio.sleep(interval - time.time() % interval)
        current = asyncio.create_task(alert_pass(state, stop=stop))
        try:
            await asyncio.shield(current)
        except asyncio.CancelledError:
            stop.set()
            await current
            raise
