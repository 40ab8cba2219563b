"""Renewing the holds of live requests: a hold expires only once its request is gone.

A hold lives `HOLD_TTL` from its placing or its last renewal. Every instance renews the holds of its own
requests in flight every `HOLD_RENEWAL_INTERVAL` (one UPDATE by primary key per 500 holds), however long
they run: a client that stops reading a stream cannot make its request outlive its hold, have the
sweeper free it, and be charged only what is free when it finally settles. The holds of a process that
died are renewed no more: they expire within `HOLD_TTL` and the sweeper frees them.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.billing.inflight import InFlight
from trollllm.billing.tables import Hold
from trollllm.clock import Clock
from trollllm.db import write_connection
from trollllm.settings import HOLD_RENEWAL_INTERVAL, HOLD_TTL

logger = logging.getLogger("trollllm.billing.renewal")

RENEWAL_BATCH_SIZE = 500


async def renew_live_holds(
    sessions: async_sessionmaker[AsyncSession], in_flight: InFlight, now: datetime
) -> int:
    """Move the expiry of every hold of `in_flight` to `now + HOLD_TTL`; returns how many rows moved.

    A hold the sweeper or its settlement already deleted is not there to move. Matched on its request id
    too: SQLite may give a later hold the id of one the sweeper freed.
    """
    live = list(in_flight.live_holds().items())
    renewed = 0
    for start in range(0, len(live), RENEWAL_BATCH_SIZE):
        batch = live[start : start + RENEWAL_BATCH_SIZE]
        statement = (
            update(Hold)
            .where(Hold.id.in_([hold_id for hold_id, _ in batch]))
            .where(Hold.request_id.in_([request_id for _, request_id in batch]))
            .values(expires_at=now + HOLD_TTL)
        )
        async with write_connection(sessions) as connection:
            renewed += (await connection.execute(statement)).rowcount
    return renewed


async def renew_periodically(
    sessions: async_sessionmaker[AsyncSession],
    in_flight: InFlight,
    clock: Clock,
    *,
    interval: timedelta = HOLD_RENEWAL_INTERVAL,
) -> None:
    """Renew this instance's live holds every `interval` until cancelled (a task of the app's lifespan).

    A failed renewal (database unreachable) is logged and tried again at the next interval: a hold has
    `HOLD_TTL` − `interval` left when its renewal comes due.
    """
    while True:
        await asyncio.sleep(interval.total_seconds())
        try:
            await renew_live_holds(sessions, in_flight, clock.now())
        except Exception:
            logger.exception("could not renew the holds of the requests in flight")
