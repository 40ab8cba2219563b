"""Plan lifecycle on a controllable clock (SPEC §5): expiry on a request, at login and by the job; the monthly
reset at 00:00 UTC on the 1st; the monthly token limit; month-end arithmetic; clock jumps."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import PASSWORD
from plan_helpers import burst, chat_body, edit_plan, relogin, set_user, user_row
from proxy_world import ANTHROPIC_MODEL, World
from sqlalchemy import select, text

from trollllm.billing.holds import HeldRequest, place_hold
from trollllm.billing.ledger import reconcile
from trollllm.billing.records import RequestRecord
from trollllm.billing.settlement import settle
from trollllm.billing.tables import LedgerEntry
from trollllm.clock import ManualClock
from trollllm.money import Money, TokenUsage
from trollllm.plans.calendar import add_one_month, month_start, next_month_start
from trollllm.plans.expiry import (
    PLAN_JOB,
    PlanJobSchedule,
    expire_plan,
    next_daily_run,
    plan_has_expired,
    run_plan_jobs,
)
from trollllm.storage.joblock import job_lock

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # the ManualClock's start: alice's dev plan begins here
EXPIRY = datetime(2026, 2, 15, 12, 0, tzinfo=UTC)
DEV_CREDITS = Money.from_usd(225)


async def ask(world: World, **extra: Any) -> int:
    (reply,) = await burst([world.base_url], world.user.api_key, 1, chat_body(**extra))
    return reply.status


async def ledger_of(world: World, user_id: int, kind: str | None = None) -> list[LedgerEntry]:
    async with world.state.sessions() as session:
        statement = select(LedgerEntry).where(LedgerEntry.user_id == user_id).order_by(LedgerEntry.id)
        if kind is not None:
            statement = statement.where(LedgerEntry.kind == kind)
        return list(await session.scalars(statement))


async def assert_books_balance(world: World) -> None:
    async with world.state.sessions() as session:
        assert await reconcile(session) == []


async def grant_ref_credits(world: World, amount: float) -> None:
    await world.admin_call(
        "POST",
        "/api/admin/users/alice/credits",
        json={"amountUsd": amount, "balance": "refCredits", "reason": "referral"},
    )


async def assert_reset_to_free(world: World, *, ref_credits: Money) -> None:
    user = await user_row(world)
    assert user.plan == "free"
    assert user.credits_nanos == 0
    assert user.ref_credits_nanos == ref_credits.nanos, "refCredits are untouched"
    assert user.total_tokens == 0
    assert user.plan_start_date is None and user.plan_expires_at is None
    (reset,) = await ledger_of(world, user.id, "plan_reset")
    assert reset.credits_delta_nanos < 0 and reset.ref_credits_delta_nanos == 0
    assert reset.actor == "system"
    await assert_books_balance(world)


async def test_a_request_after_expiry_resets_to_free_then_is_refused_as_free(
    world: World, clock: ManualClock
) -> None:
    await grant_ref_credits(world, 3)
    assert await ask(world) == 200
    before = await user_row(world)
    assert before.plan_expires_at == EXPIRY
    clock.set(EXPIRY - timedelta(seconds=1))
    assert await ask(world) == 200
    clock.set(EXPIRY)  # a plan expires at its `planExpiresAt`
    (reply,) = await burst([world.base_url], world.user.api_key, 1)
    assert reply.status == 403
    assert orjson.loads(reply.body)["error"]["type"] == "free_tier_restricted"
    after = await user_row(world)
    (reset,) = await ledger_of(world, after.id, "plan_reset")
    charged = sum(-e.credits_delta_nanos for e in await ledger_of(world, after.id, "charge"))
    assert -reset.credits_delta_nanos == DEV_CREDITS.nanos - charged
    await assert_reset_to_free(world, ref_credits=Money.from_usd(3))
    assert await ask(world) == 403
    assert len(await ledger_of(world, after.id, "plan_reset")) == 1, "reset once"


async def test_login_after_expiry_resets_to_free(world: World, clock: ManualClock) -> None:
    clock.set(EXPIRY + timedelta(days=3))
    response = await world.gateway.client.post(
        "/api/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200
    user = response.json()["user"]
    assert (user["plan"], user["credits"], user["totalTokens"]) == ("free", 0, 0)
    assert user["planStartDate"] is None and user["planExpiresAt"] is None
    await assert_reset_to_free(world, ref_credits=Money.ZERO)


async def test_the_job_resets_every_expired_plan_and_only_those(world: World, clock: ManualClock) -> None:
    await world.admin_call("PATCH", "/api/admin/users/root", json={"plan": "pro"})
    await set_user(world, "root", plan_expires_at=EXPIRY + timedelta(days=10))
    clock.set(EXPIRY + timedelta(hours=1))
    report = await run_plan_jobs(world.state)
    assert report.ran and report.expired == 1
    await assert_reset_to_free(world, ref_credits=Money.ZERO)
    root = await user_row(world, "root")
    assert root.plan == "pro" and root.credits_nanos == Money.from_usd(500).nanos
    again = await run_plan_jobs(world.state)
    assert again.ran and again.expired == 0


async def test_the_expire_plans_command_runs_the_job(
    world: World, clock: ManualClock, tmp_path: Path
) -> None:
    await set_user(world, plan_expires_at=datetime(2001, 1, 1, tzinfo=UTC))  # past on the system clock too
    env = {
        **os.environ,
        "TROLLLLM_DATA_DIR": str(tmp_path),
        "DATABASE_URL": world.state.settings.effective_database_url,
        "TROLLLLM_SECRET": world.state.settings.secret.get_secret_value(),  # type: ignore[union-attr]
        "TROLLLLM_AUTO_MIGRATE": "false",
        "TROLLLLM_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "trollllm",
        "expire-plans",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    assert "expired 1 plans" in stdout.decode()
    await assert_reset_to_free(world, ref_credits=Money.ZERO)


async def test_credits_held_by_requests_in_flight_are_removed_once_they_settle(
    world: World, clock: ManualClock
) -> None:
    user = await user_row(world)
    held = HeldRequest(
        request_id="req_inflight", user_id=user.id, amount=Money.from_usd(10), model_id="gpt-test"
    )
    hold_id = await world.state.db.write(place_hold(held, clock.now()))
    assert hold_id is not None
    clock.set(EXPIRY + timedelta(minutes=1))
    first = await expire_plan(world.state.sessions, user.id, clock.now())
    assert first is not None and not first.complete
    assert first.removed == DEV_CREDITS - Money.from_usd(10)
    partial = await user_row(world)
    assert partial.plan == "free" and partial.credits_nanos == Money.from_usd(10).nanos
    assert partial.plan_expires_at == EXPIRY, "kept, so the next check removes the rest"
    assert await ask(world) == 403
    record = RequestRecord("gpt-test", 200, 5, True, False, user_key_id=None)
    await world.state.db.write(
        settle(held, hold_id, Money.from_usd(1), TokenUsage(10, 10), record, clock.now())
    )
    assert await ask(world) == 403  # this check finds the plan still due and removes the rest
    after = await user_row(world)
    assert after.credits_nanos == 0 and after.plan_expires_at is None and after.plan_start_date is None
    resets = await ledger_of(world, user.id, "plan_reset")
    assert [-e.credits_delta_nanos for e in resets] == [
        (DEV_CREDITS - Money.from_usd(10)).nanos,
        Money.from_usd(9).nanos,
    ]
    await assert_books_balance(world)


async def test_concurrent_expiries_of_one_user_reset_it_once(any_world: World, clock: ManualClock) -> None:
    world = any_world
    user = await user_row(world)
    clock.set(EXPIRY)
    results = await asyncio.gather(
        *(expire_plan(world.state.sessions, user.id, clock.now()) for _ in range(6)),
        run_plan_jobs(world.state),
        burst([world.base_url], world.user.api_key, 6),
    )
    resets = [result for result in results[:6] if result is not None]
    assert len(resets) + results[6].expired == 1  # type: ignore[union-attr]
    assert {reply.status for reply in results[7]} == {403}  # type: ignore[union-attr]
    await assert_reset_to_free(world, ref_credits=Money.ZERO)


async def test_the_schedule_runs_the_job_inside_the_server(world: World, clock: ManualClock) -> None:
    clock.set(EXPIRY + timedelta(days=1))
    schedule = PlanJobSchedule(world.state, first_delay=timedelta(0))
    try:
        for _ in range(200):
            if (await user_row(world)).plan == "free":
                break
            await asyncio.sleep(0.02)
    finally:
        await schedule.stop()
    await assert_reset_to_free(world, ref_credits=Money.ZERO)


async def test_only_one_instance_runs_the_job_at_a_time(any_world: World) -> None:
    engine = any_world.state.engine
    async with job_lock(engine, PLAN_JOB) as first:
        assert first
        report = await run_plan_jobs(any_world.state)
    if engine.dialect.name == "postgresql":
        assert not report.ran, "the advisory lock is held by the other run"
        async with engine.connect() as connection:
            held = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
        assert held == 0, "released after the run"
    else:
        assert report.ran, "SQLite is one process"
    assert (await run_plan_jobs(any_world.state)).ran


async def test_monthly_counters_reset_at_00_00_utc_on_the_first(world: World, clock: ManualClock) -> None:
    clock.set(datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC))
    await relogin(world)
    assert await ask(world) == 200
    used = (await user_row(world)).monthly_tokens_used
    assert used > 0
    billing = await world.gateway.client.get("/api/user/billing", headers=world.user.auth)
    assert billing.json()["monthlyTokensUsed"] == used
    assert billing.json()["monthlyResetDate"] == "2026-02-01T00:00:00Z"
    clock.set(datetime(2026, 2, 1, 0, 0, tzinfo=UTC))
    billing = await world.gateway.client.get("/api/user/billing", headers=world.user.auth)
    assert billing.json()["monthlyTokensUsed"] == 0
    assert billing.json()["monthlyResetDate"] == "2026-03-01T00:00:00Z"
    user = await user_row(world)
    assert user.tokens_used == used, "the lifetime counter is kept"


async def test_a_request_after_the_reset_date_resets_the_month_lazily(
    world: World, clock: ManualClock
) -> None:
    await set_user(world, monthly_tokens_used=999, monthly_reset_date=datetime(2026, 1, 1, tzinfo=UTC))
    assert await ask(world) == 200
    user = await user_row(world)
    assert 0 < user.monthly_tokens_used < 999
    assert user.monthly_reset_date == datetime(2026, 2, 1, tzinfo=UTC)


async def test_the_job_resets_monthly_counters(world: World, clock: ManualClock) -> None:
    assert await ask(world) == 200
    clock.set(datetime(2026, 2, 1, 0, 0, 5, tzinfo=UTC))
    report = await run_plan_jobs(world.state)
    assert report.monthly_resets == 2  # alice and root
    user = await user_row(world)
    assert user.monthly_tokens_used == 0 and user.monthly_reset_date == datetime(2026, 3, 1, tzinfo=UTC)
    assert (await run_plan_jobs(world.state)).monthly_resets == 0


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_the_monthly_token_limit_is_a_429_until_the_month_resets(
    world: World, clock: ManualClock, wire: str
) -> None:
    await edit_plan(world, "dev", monthlyTokenLimit=1000)
    await set_user(world, monthly_tokens_used=1000)
    client = world.gateway.client
    if wire == "openai":
        call = ("/v1/chat/completions", {"Authorization": f"Bearer {world.user.api_key}"}, chat_body())
    else:
        body = {"model": ANTHROPIC_MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
        call = ("/v1/messages", {"x-api-key": world.user.api_key}, body)
    response = await client.post(call[0], headers=call[1], json=call[2])
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["type"] == "monthly_token_limit_exceeded"
    assert (error["monthlyTokensUsed"], error["monthlyTokensLimit"]) == (1000, 1000)
    if wire == "anthropic":
        assert response.json()["type"] == "error"
    until_reset = datetime(2026, 2, 1, tzinfo=UTC) - clock.now()
    assert response.headers["Retry-After"] == str(int(until_reset.total_seconds()))
    assert response.headers["x-should-retry"] == "false"
    assert response.headers["x-ratelimit-limit-requests"] == "300"
    await set_user(world, monthly_tokens_used=999)
    assert (await client.post(call[0], headers=call[1], json=call[2])).status_code == 200
    assert (await client.post(call[0], headers=call[1], json=call[2])).status_code == 429
    clock.set(datetime(2026, 2, 1, tzinfo=UTC))
    assert (await client.post(call[0], headers=call[1], json=call[2])).status_code == 200


async def test_an_unlimited_plan_has_no_monthly_limit(world: World) -> None:
    await world.admin_call("PATCH", "/api/admin/users/alice", json={"plan": "pro-troll"})
    await set_user(world, monthly_tokens_used=10**14)
    assert await ask(world) == 200


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (datetime(2026, 1, 31, 9, 30, tzinfo=UTC), datetime(2026, 2, 28, 9, 30, tzinfo=UTC)),
        (datetime(2028, 1, 31, 9, 30, tzinfo=UTC), datetime(2028, 2, 29, 9, 30, tzinfo=UTC)),
        (datetime(2026, 3, 31, tzinfo=UTC), datetime(2026, 4, 30, tzinfo=UTC)),
        (datetime(2026, 8, 31, tzinfo=UTC), datetime(2026, 9, 30, tzinfo=UTC)),
        (datetime(2026, 12, 15, 23, 0, tzinfo=UTC), datetime(2027, 1, 15, 23, 0, tzinfo=UTC)),
        (datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 28, tzinfo=UTC)),
    ],
)
def test_one_calendar_month_ahead(start: datetime, expected: datetime) -> None:
    assert add_one_month(start) == expected


def test_month_boundaries_are_in_utc() -> None:
    minus_two = timezone(timedelta(hours=-2))
    local = datetime(2026, 1, 31, 23, 30, tzinfo=minus_two)  # 01:30 UTC on Feb 1
    assert next_month_start(local) == datetime(2026, 3, 1, tzinfo=UTC)
    assert month_start(local) == datetime(2026, 2, 1, tzinfo=UTC)
    assert next_month_start(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )
    assert next_daily_run(datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)) == datetime(2026, 2, 1, tzinfo=UTC)
    assert next_daily_run(datetime(2026, 2, 1, tzinfo=UTC)) == datetime(2026, 2, 2, tzinfo=UTC)
    assert not plan_has_expired(None, datetime(2999, 1, 1, tzinfo=UTC))
    assert plan_has_expired(EXPIRY, EXPIRY)


async def test_a_plan_bought_on_january_31_expires_on_february_28(world: World, clock: ManualClock) -> None:
    clock.set(datetime(2026, 1, 31, 10, 0, tzinfo=UTC))
    await relogin(world)
    await world.admin_call("PATCH", "/api/admin/users/alice", json={"plan": "pro"})
    assert (await user_row(world)).plan_expires_at == datetime(2026, 2, 28, 10, 0, tzinfo=UTC)
    clock.set(datetime(2026, 2, 28, 9, 59, 59, tzinfo=UTC))
    assert await ask(world) == 200
    clock.set(datetime(2026, 2, 28, 10, 0, tzinfo=UTC))
    assert await ask(world) == 403


async def test_a_clock_that_jumps_back_and_forth_is_never_a_500(world: World, clock: ManualClock) -> None:
    assert await ask(world) == 200
    clock.set(datetime(2026, 2, 1, 0, 0, 1, tzinfo=UTC))
    assert await ask(world) == 200  # resets the month, then counts this request
    march = (await user_row(world)).monthly_reset_date
    assert march == datetime(2026, 3, 1, tzinfo=UTC)
    clock.set(datetime(2025, 12, 20, tzinfo=UTC))  # back before the plan even started
    assert await ask(world) == 200, "not expired, nothing reset: the dates are in the future"
    await relogin(world)
    for path in ("/api/user/billing", "/api/user/usage", "/api/user/me"):
        response = await world.gateway.client.get(path, headers=world.user.auth)
        assert response.status_code == 200, (path, response.text)
    usage = (await world.gateway.client.get("/api/user/usage", headers=world.user.auth)).json()
    assert [model["requests"] for model in usage["byModel"]] == [1], "December's only: not Jan's or Feb's"
    assert (await user_row(world)).monthly_reset_date == march, "no second reset"
    clock.set(datetime(2026, 3, 1, tzinfo=UTC))
    assert await ask(world) == 403, "forward again: expired on Feb 15"


async def friend_key_of(world: World) -> str:
    client = world.gateway.client
    created = await client.post("/api/user/friend-key", headers=world.user.auth)
    assert created.status_code == 201, created.text
    limits = [{"modelId": "gpt-test", "limitUsd": 5, "enabled": True}]
    put = await client.put(
        "/api/user/friend-key/limits", headers=world.user.auth, json={"modelLimits": limits}
    )
    assert put.status_code == 200, put.text
    key: str = created.json()["friendKey"]
    return key


async def test_a_friend_key_request_expires_the_owners_plan_too(world: World, clock: ManualClock) -> None:
    key = await friend_key_of(world)
    clock.set(EXPIRY)
    (reply,) = await burst([world.base_url], key, 1)
    assert reply.status == 403
    error = orjson.loads(reply.body)["error"]
    assert (error["type"], error["message"]) == ("free_tier_restricted", "Friend Key owner must upgrade plan")
    await assert_reset_to_free(world, ref_credits=Money.ZERO)


async def test_a_friend_key_meets_the_owners_monthly_limit_without_seeing_the_owners_counts(
    world: World,
) -> None:
    key = await friend_key_of(world)
    await edit_plan(world, "dev", monthlyTokenLimit=1000)
    await set_user(world, monthly_tokens_used=5000)
    (reply,) = await burst([world.base_url], key, 1)
    assert reply.status == 429
    error = orjson.loads(reply.body)["error"]
    assert error["type"] == "monthly_token_limit_exceeded"
    assert "monthlyTokensUsed" not in error and "5000" not in error["message"]
