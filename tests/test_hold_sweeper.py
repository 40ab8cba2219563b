"""SPEC §4 / issue 4: holds left by a crashed process expire and are released once, by a sweeper."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import timedelta

import pytest
from conftest import AppFactory, AppHarness
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.accounts.tables import User
from trollllm.billing.holds import HeldRequest
from trollllm.billing.holds import place_hold as proxy_hold
from trollllm.billing.ledger import ADMIN_ADJUSTMENT, apply_adjustment, reconcile
from trollllm.billing.records import RequestRecord
from trollllm.billing.settlement import settle
from trollllm.billing.sweeper import release_expired_holds
from trollllm.billing.tables import Hold
from trollllm.clock import ManualClock
from trollllm.db import transaction
from trollllm.friendkeys.tables import FriendKey, FriendKeyModelLimit
from trollllm.money import Money, TokenUsage
from trollllm.settings import HOLD_TTL

MODEL = "gpt-test"


async def funded_user(sessions: async_sessionmaker[AsyncSession], username: str, clock: ManualClock) -> int:
    """A user with $10 granted through the ledger (so `reconcile` can check the books afterwards)."""
    async with transaction(sessions) as session:
        user = User(username=username, password_hash="not-a-hash", plan="free")
        session.add(user)
        await session.flush()
        await apply_adjustment(
            session,
            user_id=user.id,
            credits_delta=Money.from_usd(10),
            ref_credits_delta=Money.ZERO,
            kind=ADMIN_ADJUSTMENT,
            reason="grant",
            actor="test",
            when=clock.now(),
        )
        return user.id


async def friend_key(sessions: async_sessionmaker[AsyncSession], owner_id: int) -> int:
    async with transaction(sessions) as session:
        key = FriendKey(
            owner_id=owner_id, key_digest=hashlib.sha256(str(owner_id).encode()).digest(), last4="abcd"
        )
        session.add(key)
        await session.flush()
        session.add(FriendKeyModelLimit(friend_key_id=key.id, model_id=MODEL, limit_nanos=5 * 10**9))
        return key.id


async def place_hold(
    sessions: async_sessionmaker[AsyncSession],
    user_id: int,
    amount: int,
    expires_in: timedelta,
    clock: ManualClock,
    friend_key_id: int | None = None,
) -> None:
    """A hold as the proxy places it: the row plus the same amount added to the held sums."""
    async with transaction(sessions) as session:
        count = await session.scalar(select(func.count()).select_from(Hold))
        session.add(
            Hold(
                request_id=f"req_{user_id}_{count}",
                user_id=user_id,
                amount_nanos=amount,
                friend_key_id=friend_key_id,
                model_id=MODEL if friend_key_id else None,
                expires_at=clock.now() + expires_in,
            )
        )
        await session.execute(
            update(User).where(User.id == user_id).values(held_nanos=User.held_nanos + amount)
        )
        if friend_key_id is not None:
            await session.execute(
                update(FriendKeyModelLimit)
                .where(FriendKeyModelLimit.friend_key_id == friend_key_id)
                .values(held_nanos=FriendKeyModelLimit.held_nanos + amount)
            )


async def held(sessions: async_sessionmaker[AsyncSession], user_id: int) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(User.held_nanos).where(User.id == user_id)) or 0)


async def open_holds(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    async with sessions() as session:
        return sorted((await session.scalars(select(Hold.amount_nanos))).all())


async def test_sweeper_releases_expired_holds_and_leaves_unexpired_ones(
    any_gateway: AppHarness, clock: ManualClock
) -> None:
    sessions = any_gateway.state.sessions
    alice = await funded_user(sessions, "alice", clock)
    for amount in (100, 200):
        await place_hold(sessions, alice, amount, timedelta(minutes=-1), clock)
    await place_hold(sessions, alice, 400, timedelta(0), clock)  # expires exactly now: still open
    await place_hold(sessions, alice, 800, timedelta(minutes=5), clock)

    released = await release_expired_holds(sessions, clock.now())

    assert released == 2
    assert await open_holds(sessions) == [400, 800]
    assert await held(sessions, alice) == 1200
    async with sessions() as session:
        assert await reconcile(session) == []


async def test_sweeper_releases_each_hold_once_when_run_concurrently(
    app_factory: AppFactory, database_url: str, clock: ManualClock
) -> None:
    instances = [await app_factory(database_url), await app_factory(database_url)]
    sessions = instances[0].state.sessions
    users = [await funded_user(sessions, name, clock) for name in ("alice", "bob", "carol")]
    key = await friend_key(sessions, users[0])
    for i in range(30):
        user = users[i % 3]
        await place_hold(
            sessions,
            user,
            10 + i,
            timedelta(minutes=-1),
            clock,
            friend_key_id=key if user == users[0] else None,
        )
    await place_hold(sessions, users[0], 5000, timedelta(minutes=1), clock, friend_key_id=key)
    await place_hold(sessions, users[1], 7000, timedelta(minutes=1), clock)

    counts = await asyncio.gather(
        *(release_expired_holds(app.state.sessions, clock.now(), batch_size=4) for app in instances)
    )

    assert sum(counts) == 30
    assert await open_holds(sessions) == [5000, 7000]
    assert [await held(sessions, user) for user in users] == [5000, 7000, 0]
    async with sessions() as session:
        limit_held = await session.scalar(select(FriendKeyModelLimit.held_nanos))
        assert await reconcile(session) == []
    assert limit_held == 5000


async def test_sweeping_again_releases_nothing(any_gateway: AppHarness, clock: ManualClock) -> None:
    sessions = any_gateway.state.sessions
    alice = await funded_user(sessions, "alice", clock)
    await place_hold(sessions, alice, 100, timedelta(minutes=-1), clock)

    first = await release_expired_holds(sessions, clock.now())
    second = await release_expired_holds(sessions, clock.now())

    assert (first, second) == (1, 0)
    assert await held(sessions, alice) == 0


async def test_sweeper_logs_and_skips_a_hold_the_books_cannot_release(
    gateway: AppHarness, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = gateway.state.sessions
    alice = await funded_user(sessions, "alice", clock)
    await place_hold(sessions, alice, 100, timedelta(minutes=-2), clock)
    await place_hold(sessions, alice, 50, timedelta(minutes=-1), clock)
    async with transaction(sessions) as session:  # a bug elsewhere left held_nanos short of the holds
        await session.execute(update(User).where(User.id == alice).values(held_nanos=60))

    with caplog.at_level(logging.ERROR, logger="trollllm"):
        released = await release_expired_holds(sessions, clock.now())

    assert released == 1
    assert await open_holds(sessions) == [100]
    assert await held(sessions, alice) == 10
    assert any("cannot release an expired hold" in record.getMessage() for record in caplog.records)


async def test_settling_a_swept_request_never_releases_the_hold_that_reused_its_id(
    any_gateway: AppHarness, clock: ManualClock
) -> None:
    state = any_gateway.state
    alice = await funded_user(state.sessions, "alice", clock)
    slow = HeldRequest("req_slow", alice, Money.from_usd(2), MODEL)
    slow_id = await state.db.write(proxy_hold(slow, clock.now()))
    assert slow_id is not None
    clock.advance((HOLD_TTL + timedelta(seconds=1)).total_seconds())
    assert await release_expired_holds(state.sessions, clock.now()) == 1
    fast = HeldRequest("req_fast", alice, Money.from_usd(3), MODEL)
    assert await state.db.write(proxy_hold(fast, clock.now())) is not None  # SQLite may reuse slow_id

    record = RequestRecord(MODEL, 200, 1, True, False)
    await state.db.write(settle(slow, slow_id, Money.from_usd(1), TokenUsage(1, 1), record, clock.now()))

    assert await open_holds(state.sessions) == [Money.from_usd(3).nanos]
    assert await held(state.sessions, alice) == Money.from_usd(3).nanos
    async with state.sessions() as session:
        assert await reconcile(session) == []
