"""Credit leases across instances (issue 26): two `trollllm serve` processes with `TROLLLLM_CREDIT_LEASES`
on one PostgreSQL and Redis serve one heavy user's holds from leases of its balance. The books stay exact
while leases are out and after they return, no balance goes below zero, a killed instance's lease returns
to the balance, a plan that expires while a lease is out removes every credit once the lease is back, and an
admin's deduction on the instance holding a lease meets only what the open request holds."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from instances import Cluster, gateway_cluster, start_instance, wait_ready
from plan_helpers import chat_body
from services import REDIS_URL
from sqlalchemy import text

from trollllm.billing.lease_programs import LEASE_TTL
from trollllm.billing.sweeper import release_expired_leases
from trollllm.db import create_sessionmaker, create_test_engine
from trollllm.money import Money

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SLOW = "[mock delay_ms=3000] hello"  # a request that stays in flight for 3 s


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
    scaled_database_url: str,
    scaled_redis_prefix: str,
    mock_url: str,
) -> Iterator[Cluster]:
    with gateway_cluster(
        tmp_path_factory.mktemp("leases"), database_url=scaled_database_url, redis_url=REDIS_URL,
        redis_prefix=scaled_redis_prefix, mock_url=mock_url, count=2, TROLLLLM_CREDIT_LEASES="true",
    ) as cluster:  # fmt: skip
        cluster.new_plan("leased", rpm=1_000_000, credit_grant_usd=0)
        yield cluster


@dataclass(frozen=True)
class Books:
    credits: int
    ref_credits: int
    held: int
    ledger: int
    charges: int
    charge_entries: int
    logged_cost: int
    logs: int
    leases: int
    lease_rows: int
    holds: int


async def books(cluster: Cluster, username: str) -> Books:
    engine = create_test_engine(cluster.database_url)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT u.credits_nanos, u.ref_credits_nanos, u.held_nanos, "
                        "(SELECT COALESCE(SUM(credits_delta_nanos + ref_credits_delta_nanos), 0) "
                        " FROM ledger_entries WHERE user_id = u.id), "
                        "(SELECT COALESCE(-SUM(credits_delta_nanos + ref_credits_delta_nanos), 0) "
                        " FROM ledger_entries WHERE user_id = u.id AND kind = 'charge'), "
                        "(SELECT COUNT(*) FROM ledger_entries WHERE user_id = u.id AND kind = 'charge'), "
                        "(SELECT COALESCE(SUM(credits_cost_nanos), 0) FROM request_logs "
                        " WHERE user_id = u.id), "
                        "(SELECT COUNT(*) FROM request_logs WHERE user_id = u.id), "
                        "(SELECT COALESCE(SUM(amount_nanos), 0) FROM credit_leases WHERE user_id = u.id), "
                        "(SELECT COUNT(*) FROM credit_leases WHERE user_id = u.id), "
                        "(SELECT COUNT(*) FROM holds WHERE user_id = u.id) "
                        "FROM users u WHERE u.username = :name"
                    ),
                    {"name": username},
                )
            ).one()
    finally:
        await engine.dispose()
    return Books(*(int(value) for value in row))


def reconcile_exit_status(cluster: Cluster) -> int:
    return subprocess.run(
        [sys.executable, "-m", "trollllm", "reconcile"], env=cluster.env, capture_output=True, check=False
    ).returncode


def funded_user(cluster: Cluster, username: str, usd: str) -> str:
    account = cluster.new_user(username, plan="leased")
    cluster.admin_call(
        "POST",
        f"/api/admin/users/{username}/credits",
        json={"amountUsd": float(usd), "balance": "credits", "reason": "the test's budget"},
    )
    return account.api_key


async def chat(client: httpx.AsyncClient, url: str, key: str, content: str = "hello") -> httpx.Response:
    body = chat_body(messages=[{"role": "user", "content": content}])
    return await client.post(
        url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=body
    )


def cost_of(response: httpx.Response) -> int:
    return Money.from_usd(Decimal(response.headers["x-trollllm-cost-usd"])).nanos


async def settled_back(cluster: Cluster, username: str, timeout_s: float = 30.0) -> Books:
    """The books once every lease of the user has been returned (idle leases go back within seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = await books(cluster, username)
        if now.lease_rows == 0 or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.5)


async def slow_on_a_lease(
    cluster: Cluster, client: httpx.AsyncClient, url: str, key: str, username: str
) -> tuple[asyncio.Future[httpx.Response], Books]:
    """A request that stays in flight 3 s, sent to `url`: itself, and the books once its lease is out."""
    in_flight = asyncio.ensure_future(chat(client, url, key, SLOW))
    while (out := await books(cluster, username)).lease_rows == 0:
        await asyncio.sleep(0.05)
    return in_flight, out


async def test_a_heavy_user_on_two_instances_is_charged_exactly_from_leases(pair: Cluster) -> None:
    key = funded_user(pair, "heavy", "100")
    async with httpx.AsyncClient(timeout=60) as client:
        slow = asyncio.ensure_future(chat(client, pair.urls[0], key, SLOW))  # keeps instance 0's lease out
        await asyncio.sleep(0.5)
        gate = asyncio.Semaphore(64)

        async def one(n: int) -> httpx.Response:
            async with gate:
                return await chat(client, pair.urls[n % 2], key)

        answers = await asyncio.gather(*(one(n) for n in range(300)))
        during = await books(pair, "heavy")
        during_status = reconcile_exit_status(pair)
        answers.append(await slow)
    after = await settled_back(pair, "heavy")

    # A 503 is the shared PostgreSQL out of connections (other test runs): refused before any hold.
    answered = [answer for answer in answers if answer.status_code == 200]
    assert {answer.status_code for answer in answers} <= {200, 503} and len(answered) > 250
    assert during.lease_rows >= 1 and during.holds == 0, "holds came from leases, not hold rows"
    assert during.held == during.leases, "held = Σ leases while they are out"
    assert during_status == 0, "trollllm reconcile exits 0 while leases are out"
    charged = sum(cost_of(answer) for answer in answered)
    assert after.charges == charged and after.charge_entries == len(answered), "one ledger entry per charge"
    assert after.logged_cost == charged
    assert after.credits == Money.from_usd(Decimal(100)).nanos - charged
    assert after.ledger == after.credits + after.ref_credits, "Σ ledger = balance"
    assert after.lease_rows == 0 and after.held == 0, "idle leases went back to the balance"
    assert reconcile_exit_status(pair) == 0


async def test_a_balance_served_from_leases_never_goes_below_zero(pair: Cluster) -> None:
    key = funded_user(pair, "short", "0.05")  # a hold is about $0.0025: far fewer than all can pass
    async with httpx.AsyncClient(timeout=60) as client:
        body = [{"role": "user", "content": "hello"}]
        answers = await asyncio.gather(*(
            client.post(
                pair.urls[n % 2] + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                json=chat_body(messages=body, max_tokens=100),
            )
            for n in range(120)
        ))  # fmt: skip
    after = await settled_back(pair, "short")

    statuses = {answer.status_code for answer in answers}
    assert {200, 402} <= statuses <= {200, 402, 503}, statuses  # 503: the shared PostgreSQL was full
    charged = sum(cost_of(answer) for answer in answers if answer.status_code == 200)
    assert after.credits >= 0 and after.credits + after.ref_credits - after.held >= 0, "never negative"
    assert after.credits == Money.from_usd(Decimal("0.05")).nanos - charged
    assert after.charges == charged == after.logged_cost
    assert reconcile_exit_status(pair) == 0


async def test_the_lease_of_a_killed_instance_returns_to_the_balance(pair: Cluster, tmp_path: Path) -> None:
    key = funded_user(pair, "orphan", "10")
    third = start_instance(tmp_path / "doomed", pair.env)
    try:
        wait_ready([third])
        async with httpx.AsyncClient(timeout=60) as client:
            in_flight, _ = await slow_on_a_lease(pair, client, third.base_url, key, "orphan")
            third.process.send_signal(signal.SIGKILL)
            third.process.wait(timeout=20)
            with pytest.raises(httpx.TransportError):
                await in_flight
    finally:
        third.stop()
    orphaned = await books(pair, "orphan")
    engine = create_test_engine(pair.database_url)
    try:
        later = datetime.now(UTC) + LEASE_TTL + LEASE_TTL / 10
        returned = await release_expired_leases(create_sessionmaker(engine), later)
    finally:
        await engine.dispose()
    after = await books(pair, "orphan")

    assert orphaned.lease_rows == 1 and orphaned.held == orphaned.leases > 0, "the dead instance's lease"
    assert returned == 1
    assert after.lease_rows == 0 and after.held == 0, "its whole amount went back to the balance"
    assert after.credits == Money.from_usd(Decimal(10)).nanos, "the request it never answered cost nothing"
    assert reconcile_exit_status(pair) == 0


async def test_a_plan_that_expires_while_a_lease_is_out_removes_every_credit_once_it_returns(
    pair: Cluster,
) -> None:
    key = funded_user(pair, "expiring", "10")
    async with httpx.AsyncClient(timeout=60) as client:
        in_flight, _ = await slow_on_a_lease(pair, client, pair.urls[0], key, "expiring")
        engine = create_test_engine(pair.database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text("UPDATE users SET plan_expires_at = :past WHERE username = 'expiring'"),
                    {"past": datetime(2026, 1, 1)},
                )
        finally:
            await engine.dispose()
        refused = await chat(client, pair.urls[1], key)  # expires the plan: only what is free is removed
        partly = await books(pair, "expiring")
        answered = await in_flight
        await settled_back(pair, "expiring")
        again = await chat(client, pair.urls[1], key)  # the next check removes the rest
    after = await books(pair, "expiring")

    assert refused.status_code == 403 and again.status_code == 403
    assert partly.credits == partly.held == partly.leases > 0, "the lease kept its slice back"
    assert answered.status_code == 200, "the request in flight finished on its lease"
    assert after.credits == 0 and after.held == 0 and after.lease_rows == 0
    assert after.charges == cost_of(answered) and after.ledger == 0, "Σ ledger = balance = 0"
    assert reconcile_exit_status(pair) == 0


async def test_an_admin_deduction_on_the_leasing_instance_meets_only_the_open_request_s_hold(
    pair: Cluster,
) -> None:
    key = funded_user(pair, "deducted", "10")
    async with httpx.AsyncClient(timeout=60) as client:
        in_flight, out = await slow_on_a_lease(pair, client, pair.urls[0], key, "deducted")
        url = pair.urls[0] + "/api/admin/users/deducted/credits"

        async def deduct(amount: str) -> httpx.Response:
            body = f'{{"amountUsd": -{amount}, "balance": "credits", "reason": "taken back"}}'
            headers = {**pair.admin.auth, "content-type": "application/json"}
            return await client.post(url, headers=headers, content=body)

        too_much = await deduct("10")  # the lease gives back what it has free; the open request's hold stays
        recalled = await books(pair, "deducted")
        left = Money(recalled.credits - recalled.held).to_decimal()
        taken = await deduct(str(left))
        answered = await in_flight
    after = await settled_back(pair, "deducted")

    assert out.held == out.leases == 32 * recalled.held > 0, "a lease of 32 holds, then one hold's worth"
    assert too_much.status_code == 400 and too_much.json()["error"]["type"] == "insufficient_balance"
    assert taken.status_code == 200, taken.text
    assert answered.status_code == 200
    assert after.credits == recalled.held - cost_of(answered) and after.held == after.lease_rows == 0
    assert reconcile_exit_status(pair) == 0


async def test_charges_in_one_batch_take_credits_first_then_ref_credits(pair: Cluster) -> None:
    key = funded_user(pair, "mixed", "0.002")  # a few requests' worth of credits, then refCredits
    pair.admin_call(
        "POST",
        "/api/admin/users/mixed/credits",
        json={"amountUsd": 5, "balance": "refCredits", "reason": "referral rebate"},
    )
    async with httpx.AsyncClient(timeout=60) as client:
        answers = await asyncio.gather(*(chat(client, pair.urls[n % 2], key) for n in range(60)))
    after = await settled_back(pair, "mixed")

    assert {answer.status_code for answer in answers} <= {200, 503}  # 503: the shared PostgreSQL was full
    charged = sum(cost_of(answer) for answer in answers if answer.status_code == 200)
    assert charged > Money.from_usd(Decimal("0.002")).nanos, "the charges passed the credits"
    assert after.credits == 0, "credits went first, to zero and not below"
    assert after.ref_credits == Money.from_usd(Decimal("5.002")).nanos - charged
    assert after.charges == charged == after.logged_cost
    assert reconcile_exit_status(pair) == 0, "each balance equals the sum of its own ledger column"


async def rename_table(cluster: Cluster, old: str, new: str) -> None:
    engine = create_test_engine(cluster.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))
    finally:
        await engine.dispose()


async def test_a_batch_the_database_refuses_is_charged_later_from_the_outbox(pair: Cluster) -> None:
    key = funded_user(pair, "refused", "10")
    async with httpx.AsyncClient(timeout=60) as client:
        first = await chat(client, pair.urls[0], key)  # opens instance 0's lease
        await rename_table(pair, "request_logs", "request_logs_away")  # every batch now fails
        try:
            deferred = await chat(client, pair.urls[0], key)
        finally:
            await rename_table(pair, "request_logs_away", "request_logs")
        while_waiting = await books(pair, "refused")
        third = await chat(client, pair.urls[0], key)  # the database takes writes again: the outbox replays
        deadline = time.monotonic() + 30
        while (await books(pair, "refused")).charge_entries < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    after = await settled_back(pair, "refused")

    assert [first.status_code, deferred.status_code, third.status_code] == [200, 200, 200]
    assert "x-trollllm-balance-usd" not in deferred.headers, "no balance before its charge is written"
    assert while_waiting.charge_entries == 1, "the refused batch charged nothing"
    charged = cost_of(first) + cost_of(deferred) + cost_of(third)
    assert after.charges == charged and after.charge_entries == 3 and after.logs == 3
    assert after.credits == Money.from_usd(Decimal(10)).nanos - charged
    assert after.lease_rows == 0 and after.held == 0, "the refused batch's lease went back whole"
    assert reconcile_exit_status(pair) == 0
