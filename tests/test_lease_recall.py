"""Taking a balance down while a credit lease of it is out (`credit_leases` on SQLite): a refund, an admin's
deduction and a plan's expiry first recall the lease, so they meet only what open requests hold, exactly as
with leases off; while one runs, the user's new holds are ordinary ones. An ordinary hold that finds too
little free (a Friend Key's) has the lease give back what it has free, then tries again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import make_settings
from helpers import Account, register_user
from proxy_world import OPENAI_MODEL, World, build_world, serve
from sqlalchemy import select
from stripe_fake import SECRET_KEY, WEBHOOK_SECRET, StripeFake

from trollllm.accounts.tables import User
from trollllm.billing.holds import HeldRequest
from trollllm.billing.leases import CreditLeases
from trollllm.billing.ledger import reconcile
from trollllm.clock import ManualClock
from trollllm.mockupstream import MockUpstream
from trollllm.money import Money
from trollllm.plans.expiry import run_plan_jobs


@dataclass
class LeasedShop:
    world: World
    stripe: StripeFake

    @property
    def leases(self) -> CreditLeases:
        leases = self.world.state.leases
        assert leases is not None
        return leases


@pytest.fixture
async def shop(tmp_path: Path, clock: ManualClock, embedded_database_url: str) -> AsyncIterator[LeasedShop]:
    """The proxy world on SQLite with credit leases and card payments on (against the Stripe fake)."""
    stripe = StripeFake()
    await stripe.start()
    settings = make_settings(
        tmp_path, embedded_database_url, credit_leases=True, stripe_secret_key=SECRET_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET, stripe_api_base=stripe.url,
    )  # fmt: skip
    try:
        async with MockUpstream() as mock, serve(settings, clock) as (gateway, url):
            stripe.webhook_url = url + "/api/webhooks/stripe"
            yield LeasedShop(await build_world(gateway, url, mock), stripe)
    finally:
        await stripe.stop()


async def money_alone_user(shop: LeasedShop, name: str) -> Account:
    """A new user on `pro-troll`, a plan of money alone (no token limit, no window): leasable holds."""
    account = await register_user(shop.world.gateway, name)
    await shop.world.admin_call("PATCH", f"/api/admin/users/{name}", json={"plan": "pro-troll"})
    return account


async def one_request(shop: LeasedShop, account: Account) -> Money:
    """One chat completion (its hold taken from a lease it opens); what it cost."""
    body = {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}
    response = await shop.world.gateway.client.post(
        "/v1/chat/completions", headers={"Authorization": f"Bearer {account.api_key}"}, json=body
    )
    assert response.status_code == 200, response.text
    return Money.from_usd(Decimal(response.headers["x-trollllm-cost-usd"]))


async def balances(shop: LeasedShop, name: str) -> tuple[int, int, int]:
    """(credits, refCredits, held) of `name`, nano-USD."""
    async with shop.world.state.sessions() as session:
        user = await session.scalar(select(User).where(User.username == name))
        assert user is not None
        return user.credits_nanos, user.ref_credits_nanos, user.held_nanos


async def books_balance(shop: LeasedShop) -> bool:
    async with shop.world.state.sessions() as session:
        return await reconcile(session) == []


async def test_an_admin_deduction_of_all_that_is_free_succeeds_while_a_lease_is_out(shop: LeasedShop) -> None:
    carol = await money_alone_user(shop, "carol")
    grant = {"amountUsd": 1, "balance": "credits", "reason": "grant"}
    await shop.world.admin_call("POST", "/api/admin/users/carol/credits", json=grant)
    cost = await one_request(shop, carol)
    credits, _, held = await balances(shop, "carol")
    assert held > 0  # the lease: the room for 31 more such requests
    deduction = f'{{"amountUsd": -{Money(credits).to_decimal()}, "balance": "credits", "reason": "spent"}}'
    response = await shop.world.gateway.client.post(
        "/api/admin/users/carol/credits",
        headers={**shop.world.admin.auth, "content-type": "application/json"},
        content=deduction,
    )
    assert response.status_code == 200, response.text
    assert credits == Money.from_usd(Decimal(1)).nanos - cost.nanos
    assert await balances(shop, "carol") == (0, 0, 0)
    assert await books_balance(shop)


async def test_a_refund_takes_back_all_but_what_was_spent_while_a_lease_is_out(shop: LeasedShop) -> None:
    dave = await money_alone_user(shop, "dave")
    checkout = await shop.world.gateway.client.post(
        "/api/user/checkout", json={"amountUsd": 20}, headers=dave.auth
    )
    assert checkout.status_code == 200, checkout.text
    session_id = checkout.json()["url"].rsplit("/", 1)[1]
    assert (await shop.stripe.deliver(shop.stripe.paid(session_id))).json()["outcome"] == "granted"
    cost = await one_request(shop, dave)
    assert (await balances(shop, "dave"))[2] > 0
    refunded = await shop.stripe.deliver(shop.stripe.refunded(session_id, 2000))
    assert refunded.json()["outcome"] == "refunded", refunded.text
    assert await balances(shop, "dave") == (0, 0, 0)
    payments = await shop.world.admin_call("GET", "/api/admin/payments")
    row = payments.json()["payments"][0]
    # Only what the request spent could not be taken back.
    assert Decimal(str(row["shortfallUsd"])) == cost.to_decimal() > 0
    assert await books_balance(shop)


async def test_a_plan_expiry_removes_every_credit_while_a_lease_is_out(
    shop: LeasedShop, clock: ManualClock
) -> None:
    plan = {"name": "monthly", "apiAccess": True, "rpm": 1000, "creditGrantUsd": 5,
            "monthlyTokenLimit": None, "byokRpm": 1000}  # fmt: skip
    await shop.world.admin_call("POST", "/api/admin/plans", json=plan)
    erin = await register_user(shop.world.gateway, "erin")
    await shop.world.admin_call("PATCH", "/api/admin/users/erin", json={"plan": "monthly"})  # $5, a month
    await one_request(shop, erin)
    credits, _, held = await balances(shop, "erin")
    assert credits > 0 and held > 0
    clock.advance(timedelta(days=32).total_seconds())
    report = await run_plan_jobs(shop.world.state)
    assert report.ran and report.expired == 2  # erin and the world's alice (on dev)
    assert await balances(shop, "erin") == (0, 0, 0)
    async with shop.world.state.sessions() as session:
        user = await session.scalar(select(User).where(User.username == "erin"))
        assert user is not None and (user.plan, user.plan_expires_at) == ("free", None)
    assert await books_balance(shop)


async def test_during_a_recall_an_open_request_keeps_its_hold_and_new_holds_are_ordinary(
    shop: LeasedShop,
) -> None:
    await money_alone_user(shop, "frank")
    grant = {"amountUsd": 1, "balance": "credits", "reason": "grant"}
    await shop.world.admin_call("POST", "/api/admin/users/frank/credits", json=grant)
    async with shop.world.state.sessions() as session:
        user_id = await session.scalar(select(User.id).where(User.username == "frank"))
    assert user_id is not None

    def held_request(request_id: str) -> HeldRequest:
        return HeldRequest(request_id, user_id, Money(1_000_000), OPENAI_MODEL)

    assert await shop.leases.hold(held_request("open"))  # opens a lease of 32 such holds
    assert (await balances(shop, "frank"))[2] == 32_000_000
    async with shop.leases.recalled([user_id]):
        assert (await balances(shop, "frank"))[2] == 1_000_000  # the open request's hold alone
        assert not await shop.leases.hold(held_request("during"))  # its caller places an ordinary hold
        assert await books_balance(shop)
    assert await shop.leases.hold(held_request("after"))  # the lease grows again
    assert (await balances(shop, "frank"))[2] == 1_000_000 + 32_000_000
    assert await books_balance(shop)


async def test_a_friend_key_request_is_served_from_what_the_owner_s_lease_has_free(shop: LeasedShop) -> None:
    gina = await money_alone_user(shop, "gina")
    grant = {"amountUsd": 0.05, "balance": "credits", "reason": "grant"}
    await shop.world.admin_call("POST", "/api/admin/users/gina/credits", json=grant)
    client = shop.world.gateway.client
    created = await client.post("/api/user/friend-key", headers=gina.auth)
    friend_key = created.json()["friendKey"]
    limits = {"modelLimits": [{"modelId": OPENAI_MODEL, "limitUsd": 1}]}
    assert (
        await client.put("/api/user/friend-key/limits", headers=gina.auth, json=limits)
    ).status_code == 200

    async def chat(key: str, max_tokens: int) -> int:
        body = {
            "model": OPENAI_MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": max_tokens,
        }
        response = await client.post(
            "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=body
        )
        return response.status_code

    assert await chat(gina.api_key, 1) == 200  # opens a lease of 32 such holds: most of the $0.05
    credits, _, held = await balances(shop, "gina")
    assert credits - held < 25_000_000  # less than the friend's request holds is free in the database
    assert await chat(friend_key, 1000) == 200  # up to 1,000 × $25 / MTok: held once the lease gave back
    assert await books_balance(shop)
