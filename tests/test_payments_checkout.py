"""Card top-ups and plan purchase through Stripe Checkout (SPEC §10), against a local fake of Stripe's API
with webhooks signed exactly as Stripe signs them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from admin_helpers import adjust, post_json
from admin_page_helpers import signed_in
from conftest import AppHarness, make_settings
from helpers import Account, make_admin, register_user
from proxy_world import serve
from sqlalchemy import select
from stripe_fake import SECRET_KEY, WEBHOOK_SECRET, StripeFake

from trollllm.accounts.tables import User
from trollllm.billing.ledger import reconcile
from trollllm.billing.tables import LedgerEntry
from trollllm.clock import ManualClock
from trollllm.payments.referrals import record_referral
from trollllm.payments.tables import Referral


@dataclass
class Shop:
    gateway: AppHarness
    base_url: str
    stripe: StripeFake
    admin: Account

    async def me(self, user: Account) -> dict[str, Any]:
        answer: dict[str, Any] = (await self.gateway.client.get("/api/user/me", headers=user.auth)).json()
        return answer

    async def checkout(self, user: Account, body: dict[str, Any]) -> Any:
        return await self.gateway.client.post("/api/user/checkout", json=body, headers=user.auth)

    async def paid_topup(self, user: Account, amount: float) -> str:
        """Top up `amount` and deliver its paid event; the session id."""
        response = await self.checkout(user, {"amountUsd": amount})
        assert response.status_code == 200, response.text
        session_id = response.json()["url"].rsplit("/", 1)[1]
        delivered = await self.stripe.deliver(self.stripe.paid(session_id))
        assert delivered.json()["outcome"] == "granted", delivered.text
        return session_id

    async def ledger(self, kind: str) -> list[LedgerEntry]:
        async with self.gateway.state.sessions() as session:
            return list(await session.scalars(select(LedgerEntry).where(LedgerEntry.kind == kind)))

    async def books_balance(self) -> bool:
        async with self.gateway.state.sessions() as session:
            return await reconcile(session) == []


async def open_shop(tmp_path: Path, clock: ManualClock, database_url: str) -> AsyncIterator[Shop]:
    fake = StripeFake()
    await fake.start()
    settings = make_settings(
        tmp_path, database_url, stripe_secret_key=SECRET_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=fake.url,
    )  # fmt: skip
    try:
        async with serve(settings, clock) as (gateway, base_url):
            fake.webhook_url = base_url + "/api/webhooks/stripe"
            yield Shop(gateway, base_url, fake, await make_admin(gateway))
    finally:
        await fake.stop()


@pytest.fixture
async def shop(tmp_path: Path, clock: ManualClock, embedded_database_url: str) -> AsyncIterator[Shop]:
    async for opened in open_shop(tmp_path, clock, embedded_database_url):
        yield opened


# --- checkout ---------------------------------------------------------------------------------------


async def test_checkout_is_not_found_when_payments_are_off(gateway: AppHarness) -> None:
    alice = await register_user(gateway, "alice")
    response = await gateway.client.post("/api/user/checkout", json={"amountUsd": 20}, headers=alice.auth)
    assert response.status_code == 404
    assert (await gateway.client.post("/api/webhooks/stripe", content=b"{}")).status_code == 404


async def test_a_top_up_creates_a_checkout_session_for_its_amount(shop: Shop) -> None:
    alice = await register_user(shop.gateway, "alice")
    response = await shop.checkout(alice, {"amountUsd": 20})
    assert response.status_code == 200, response.text
    assert response.json()["url"].startswith(shop.stripe.url + "/pay/cs_test_")
    sent = shop.stripe.requests[-1]
    assert sent["line_items[0][price_data][unit_amount]"] == "2000"
    assert sent["line_items[0][price_data][currency]"] == "usd"
    assert sent["mode"] == "payment"
    assert sent["success_url"].startswith(shop.base_url + "/dashboard/billing")
    assert (await shop.me(alice))["credits"] == 0  # nothing before Stripe says it is paid


@pytest.mark.parametrize(
    ("amount", "status"),
    [(4.99, 400), (0, 400), (-5, 400), (10_000.01, 400), (1e9, 400), (5.001, 400), ("ten", 422), (None, 422)],
)
async def test_a_bad_top_up_amount_is_refused_naming_amount_usd(shop: Shop, amount: Any, status: int) -> None:
    alice = await register_user(shop.gateway, "alice")
    response = await post_json(shop.gateway, alice, "/api/user/checkout", {"amountUsd": amount})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert "amountUsd" in error.get("field", "") + error["message"]
    assert shop.stripe.requests == []


async def test_a_plan_not_for_sale_is_refused_naming_plan(shop: Shop) -> None:
    alice = await register_user(shop.gateway, "alice")
    for plan in ("dev", "gold"):
        response = await shop.checkout(alice, {"plan": plan})
        assert response.status_code == 400 and response.json()["error"]["field"] == "plan"


# --- the webhook ------------------------------------------------------------------------------------


async def test_a_paid_session_grants_its_amount_once(shop: Shop) -> None:
    alice = await register_user(shop.gateway, "alice")
    response = await shop.checkout(alice, {"amountUsd": 20})
    session_id = response.json()["url"].rsplit("/", 1)[1]
    event = shop.stripe.paid(session_id)
    assert (await shop.stripe.deliver(event)).json() == {"received": True, "outcome": "granted"}
    assert (await shop.stripe.deliver(event)).json()["outcome"] == "duplicate"  # Stripe's retry
    again = shop.stripe.paid(session_id)  # another event for the same session
    assert (await shop.stripe.deliver(again)).json()["outcome"] == "duplicate"
    assert (await shop.me(alice))["credits"] == 20
    assert len(await shop.ledger("topup")) == 1
    assert await shop.books_balance()


async def test_twenty_concurrent_deliveries_of_one_event_grant_once(shop: Shop) -> None:
    alice = await register_user(shop.gateway, "alice")
    session_id = (await shop.checkout(alice, {"amountUsd": 50})).json()["url"].rsplit("/", 1)[1]
    event = shop.stripe.paid(session_id)
    answers = await asyncio.gather(*(shop.stripe.deliver(event) for _ in range(20)))
    outcomes = sorted(answer.json()["outcome"] for answer in answers)
    assert outcomes == ["duplicate"] * 19 + ["granted"]
    assert (await shop.me(alice))["credits"] == 50
    assert await shop.books_balance()


async def test_an_unpaid_completed_session_grants_nothing(shop: Shop) -> None:
    alice = await register_user(shop.gateway, "alice")
    session_id = (await shop.checkout(alice, {"amountUsd": 20})).json()["url"].rsplit("/", 1)[1]
    event = shop.stripe.event(
        "checkout.session.completed", shop.stripe.session_object(shop.stripe.sessions[session_id])
    )
    assert (await shop.stripe.deliver(event)).json()["outcome"] == "ignored"
    assert (await shop.me(alice))["credits"] == 0


def _forged(shop: Shop, payload: bytes) -> str:
    return shop.stripe.sign(payload, secret="whsec_" + "b" * 32)


def _stale(shop: Shop, payload: bytes) -> str:
    return shop.stripe.sign(payload, timestamp=int(time.time()) - 301)


def _tampered(shop: Shop, payload: bytes) -> str:
    return shop.stripe.sign(payload.replace(b'"amount_total": 2000', b'"amount_total": 1'))


@pytest.mark.parametrize(
    "signature", [_forged, _stale, _tampered, lambda _shop, _payload: "", lambda *_: "t=1"]
)
async def test_a_delivery_with_a_bad_signature_is_refused_and_grants_nothing(
    shop: Shop, signature: Any
) -> None:
    alice = await register_user(shop.gateway, "alice")
    session_id = (await shop.checkout(alice, {"amountUsd": 20})).json()["url"].rsplit("/", 1)[1]
    event = shop.stripe.paid(session_id)
    payload = json.dumps(event, indent=2).encode()
    response = await shop.stripe.deliver(event, signature=signature(shop, payload))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_signature"
    assert (await shop.me(alice))["credits"] == 0
    assert (await shop.stripe.deliver(event)).json()["outcome"] == "granted"  # the genuine one still works


async def test_a_replayed_old_delivery_is_refused(shop: Shop) -> None:
    alice = await register_user(shop.gateway, "alice")
    session_id = (await shop.checkout(alice, {"amountUsd": 20})).json()["url"].rsplit("/", 1)[1]
    event = shop.stripe.paid(session_id)
    payload = json.dumps(event, indent=2).encode()
    captured = shop.stripe.sign(payload, timestamp=int(time.time()) - 3600)  # recorded an hour ago
    response = await shop.stripe.deliver(event, signature=captured)
    assert response.status_code == 400
    assert (await shop.me(alice))["credits"] == 0


# --- refunds and disputes ---------------------------------------------------------------------------


async def test_a_refund_takes_back_its_share(shop: Shop) -> None:
    alice = await register_user(shop.gateway, "alice")
    session_id = await shop.paid_topup(alice, 20)
    assert (await shop.stripe.deliver(shop.stripe.refunded(session_id, 500))).json()["outcome"] == "refunded"
    assert (await shop.me(alice))["credits"] == 15
    await shop.stripe.deliver(shop.stripe.refunded(session_id, 2000))  # the rest, as a running total
    assert (await shop.me(alice))["credits"] == 0
    assert [entry.credits_delta_nanos for entry in await shop.ledger("refund")] == [-5 * 10**9, -15 * 10**9]
    assert await shop.books_balance()


async def test_a_refund_never_goes_below_zero_and_the_admin_sees_the_shortfall(shop: Shop) -> None:
    alice = await register_user(shop.gateway, "alice")
    session_id = await shop.paid_topup(alice, 20)
    await adjust(shop.gateway, shop.admin, "alice", -18)  # spent, say
    await shop.stripe.deliver(shop.stripe.refunded(session_id, 2000))
    assert (await shop.me(alice))["credits"] == 0
    payments = (await shop.gateway.client.get("/api/admin/payments", headers=shop.admin.auth)).json()
    row = payments["payments"][0]
    assert (row["status"], row["refundDueUsd"], row["refundedUsd"], row["shortfallUsd"]) == (
        "refunded",
        20,
        2,
        18,
    )
    assert await shop.books_balance()


async def test_the_payments_page_shows_the_refund_and_the_shortfall_in_dollars_and_cents(shop: Shop) -> None:
    alice = await register_user(shop.gateway, "alice")
    session_id = await shop.paid_topup(alice, 20)
    await adjust(shop.gateway, shop.admin, "alice", -18)
    await shop.stripe.deliver(shop.stripe.refunded(session_id, 2000))
    async with signed_in(shop.gateway, shop.admin.username) as client:
        page = (await client.get("/admin/payments")).text
    row = page[page.index("<td>alice</td>") :].split("</tr>", 1)[0]
    assert [cell.split(">")[-1] for cell in row.split("</td>")[1:-1]] == [
        "top-up", "$20.00", "refunded", "$2.00", "$18.00", "—",
    ]  # fmt: skip


async def test_a_lost_dispute_takes_back_what_is_left_and_a_won_one_nothing(shop: Shop) -> None:
    alice = await register_user(shop.gateway, "alice")
    session_id = await shop.paid_topup(alice, 20)
    assert (await shop.stripe.deliver(shop.stripe.dispute_closed(session_id, "won"))).json()[
        "outcome"
    ] == "ignored"
    assert (await shop.me(alice))["credits"] == 20
    await shop.stripe.deliver(shop.stripe.dispute_closed(session_id, "lost"))
    assert (await shop.me(alice))["credits"] == 0
    assert await shop.books_balance()


# --- plans ------------------------------------------------------------------------------------------


async def test_a_bought_plan_is_granted_as_an_upgrade(shop: Shop) -> None:
    price = await shop.gateway.client.put(
        "/api/admin/plan-prices/dev", json={"priceUsd": 29}, headers=shop.admin.auth
    )
    assert price.json() == {"plan": "dev", "priceUsd": 29}
    alice = await register_user(shop.gateway, "alice")
    response = await shop.checkout(alice, {"plan": "dev"})
    assert shop.stripe.requests[-1]["line_items[0][price_data][unit_amount]"] == "2900"
    await shop.stripe.deliver(shop.stripe.paid(response.json()["url"].rsplit("/", 1)[1]))
    me = await shop.me(alice)
    assert (me["plan"], me["credits"]) == ("dev", 225)
    assert me["planExpiresAt"] is not None
    assert await shop.books_balance()


# --- referrals --------------------------------------------------------------------------------------


async def test_a_referrer_earns_a_share_of_a_referee_s_payment_and_loses_it_on_refund(shop: Shop) -> None:
    alice = await register_user(shop.gateway, "alice")
    invite = (await shop.gateway.client.get("/api/user/referrals", headers=alice.auth)).json()
    assert invite["inviteUrl"] == f"{shop.base_url}/register?ref={invite['code']}"
    registered = await shop.gateway.client.post(
        "/api/auth/register",
        json={"username": "bob", "password": "correct horse battery", "referralCode": invite["code"]},
    )
    bob = Account("bob", registered.json()["token"], "")
    session_id = await shop.paid_topup(bob, 20)
    assert (await shop.me(alice))["refCredits"] == 2
    await adjust(shop.gateway, shop.admin, "bob", 100)  # an admin grant earns nothing
    assert (await shop.me(alice))["refCredits"] == 2
    mine = (await shop.gateway.client.get("/api/user/referrals", headers=alice.auth)).json()
    assert (mine["referees"], mine["earnedUsd"]) == (1, 2)
    await shop.stripe.deliver(shop.stripe.refunded(session_id, 1000))
    assert (await shop.me(alice))["refCredits"] == 1
    assert len(await shop.ledger("referral")) == 1
    listed = (await shop.gateway.client.get("/api/admin/referrals", headers=shop.admin.auth)).json()
    assert [(r["referrer"], r["referee"], r["rebatesUsd"]) for r in listed["referrals"]] == [
        ("alice", "bob", 1)
    ]
    assert await shop.books_balance()


async def test_a_user_is_a_referee_once_and_never_their_own(shop: Shop) -> None:
    alice = await register_user(shop.gateway, "alice")
    code = (await shop.gateway.client.get("/api/user/referrals", headers=alice.auth)).json()["code"]
    for username, referral_code in (("carol", "nope"), ("dave", code)):
        body = {"username": username, "password": "correct horse battery", "referralCode": referral_code}
        assert (await shop.gateway.client.post("/api/auth/register", json=body)).status_code == 201
    ids = await user_ids(shop.gateway)
    state = shop.gateway.state
    assert not await record_referral(state, ids["dave"], code)  # once: never changed
    assert not await record_referral(state, ids["alice"], code)  # never oneself
    async with state.sessions() as session:
        rows = [(r.referee_id, r.referrer_id) for r in await session.scalars(select(Referral))]
    assert rows == [(ids["dave"], ids["alice"])]


async def user_ids(gateway: AppHarness) -> dict[str, int]:
    async with gateway.state.sessions() as session:
        return {name: id_ for id_, name in await session.execute(select(User.id, User.username))}


# --- history ----------------------------------------------------------------------------------------


async def test_the_billing_history_lists_money_in_newest_first(shop: Shop, clock: ManualClock) -> None:
    alice = await register_user(shop.gateway, "alice")
    await adjust(shop.gateway, shop.admin, "alice", 1)
    clock.advance(60)
    code = (
        await shop.gateway.client.post(
            "/api/admin/redemption-codes", json={"count": 1, "amountUsd": 2}, headers=shop.admin.auth
        )
    ).json()["codes"][0]
    await shop.gateway.client.post("/api/user/redeem", json={"code": code}, headers=alice.auth)
    clock.advance(60)
    await shop.paid_topup(alice, 20)
    history = (await shop.gateway.client.get("/api/user/payments", headers=alice.auth)).json()
    assert [(item["kind"], item["amountUsd"]) for item in history["items"]] == [
        ("topup", 20), ("redeem", 2), ("admin_adjustment", 1)
    ]  # fmt: skip
    assert history["total"] == 3
