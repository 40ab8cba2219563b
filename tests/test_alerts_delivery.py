"""SPEC §11: each alert fires once per crossing, off the request path, to the channels set (an SMTP server
and a webhook receiver, both real, started by the test), and shows in the notification list; admins hear
of disabled factory keys, providers without a healthy key and settlements waiting in the outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alert_helpers import (
    SmtpServer,
    WebhookReceiver,
    run_alerts,
    signature_valid,
    smtp_server,
    webhook_receiver,
)
from conftest import make_settings
from plan_helpers import edit_plan, set_user
from proxy_world import OPENAI_MODEL, World, build_world, serve
from sqlalchemy import select

from trollllm.alerts import delivery
from trollllm.alerts.job import report_outbox
from trollllm.alerts.tables import AlertDelivery
from trollllm.clock import ManualClock
from trollllm.crypto import KeyBox
from trollllm.keyrotation.service import rotate_secret
from trollllm.mockupstream import MockUpstream

NEW_SECRET = "a-brand-new-server-secret-of-at-least-32-chars"
# 4,000 output tokens at $25 / MTok: a little over $0.10, 80 % of a $0.12 window and not 100 %.
BIG = {
    "model": OPENAI_MODEL,
    "max_tokens": 4000,
    "messages": [{"role": "user", "content": "[mock reply_tokens=4000] hello"}],
}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver() as running:
        yield running


@pytest.fixture
async def alerts_world(
    tmp_path: Path, clock: ManualClock, embedded_database_url: str, smtp: SmtpServer
) -> AsyncIterator[World]:
    """The proxy world with an SMTP server and webhooks to loopback allowed."""
    settings = make_settings(tmp_path, embedded_database_url, smtp_url=smtp.url, webhook_allow_private=True)
    async with MockUpstream() as mock, serve(settings, clock) as served:
        yield await build_world(served[0], served[1], mock)


@pytest.fixture
async def any_alerts_world(
    tmp_path: Path, clock: ManualClock, database_url: str, smtp: SmtpServer
) -> AsyncIterator[World]:
    """The alerts world on each database backend in turn."""
    settings = make_settings(tmp_path, database_url, smtp_url=smtp.url, webhook_allow_private=True)
    async with MockUpstream() as mock, serve(settings, clock) as served:
        yield await build_world(served[0], served[1], mock)


async def set_alerts(world: World, body: dict[str, Any], *, admin: bool = False) -> dict[str, Any]:
    account = world.admin if admin else world.user
    response = await world.gateway.client.put("/api/user/alerts", headers=account.auth, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def spend_big(world: World) -> None:
    response = await world.gateway.client.post(
        "/v1/chat/completions", headers={"Authorization": f"Bearer {world.user.api_key}"}, json=BIG
    )
    assert response.status_code == 200, response.text


async def notifications(world: World, *, admin: bool = False) -> list[dict[str, Any]]:
    account = world.admin if admin else world.user
    response = await world.gateway.client.get("/api/user/notifications", headers=account.auth)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["notifications"]
    return result


async def test_an_email_arrives_once_per_crossing_of_a_usage_window(
    any_alerts_world: World, smtp: SmtpServer, clock: ManualClock
) -> None:
    world = any_alerts_world
    await set_alerts(world, {"email": "alice@example.com"})
    await edit_plan(world, "dev", windows=[{"window": "5h", "usdLimit": 0.12}])
    await spend_big(world)

    assert await run_alerts(world.state) == 1
    assert await run_alerts(world.state) == 0  # the same crossing, still in force: no second email
    [(recipients, message)] = smtp.inbox.messages
    assert recipients == ["alice@example.com"]
    assert message["Subject"] == "TrollLLM alert: Your 5h usage window (USD) reached 80%"
    assert message["From"] == "trollllm@localhost"

    clock.advance(6 * 3600)  # the window empties: the alert re-arms
    assert await run_alerts(world.state) == 0
    await spend_big(world)
    assert await run_alerts(world.state) == 1
    assert len(smtp.inbox.messages) == 2


async def test_each_crossing_shows_in_the_notification_list(alerts_world: World) -> None:
    world = alerts_world
    await edit_plan(world, "dev", windows=[{"window": "5h", "usdLimit": 0.12}])
    await spend_big(world)

    await run_alerts(world.state)
    await run_alerts(world.state)

    [shown] = await notifications(world)
    assert shown["type"] == "usage_window"
    assert shown["message"] == "Your 5h usage window (USD) reached 80%"
    assert shown["data"]["window"] == "5h" and shown["data"]["percent"] == 80
    assert shown["data"]["usdLimit"] == 0.12 and 0.1 < shown["data"]["usdUsed"] < 0.12
    assert await notifications(world, admin=True) == []  # the admin's list is the admin's own


async def test_a_jump_past_both_thresholds_is_one_alert_at_the_higher(
    alerts_world: World, smtp: SmtpServer
) -> None:
    world = alerts_world
    await set_alerts(world, {"email": "alice@example.com"})
    await edit_plan(world, "dev", monthlyTokenLimit=1000)
    await set_user(world, monthly_tokens_used=1000)  # as settlement writes it

    await run_alerts(world.state)
    await run_alerts(world.state)

    [shown] = await notifications(world)
    assert shown["type"] == "monthly_tokens" and shown["data"] == {
        "tokensUsed": 1000,
        "tokenLimit": 1000,
        "percent": 100,
    }
    assert len(smtp.inbox.messages) == 1


async def test_a_low_balance_alerts_once_and_again_after_a_top_up_and_a_new_fall(alerts_world: World) -> None:
    world = alerts_world
    await set_alerts(world, {"lowBalanceUsd": 300})  # dev's $225 is below it
    await run_alerts(world.state)
    await run_alerts(world.state)
    assert [n["type"] for n in await notifications(world)] == ["low_balance"]

    await world.admin_call(
        "POST",
        "/api/admin/users/alice/credits",
        json={"amountUsd": 100, "balance": "credits", "reason": "top-up"},
    )
    await run_alerts(world.state)  # $325: no longer low, re-armed
    await world.admin_call(
        "POST",
        "/api/admin/users/alice/credits",
        json={"amountUsd": -50, "balance": "credits", "reason": "fix"},
    )
    await run_alerts(world.state)
    assert [n["type"] for n in await notifications(world)] == ["low_balance", "low_balance"]


async def test_a_webhook_receiver_sees_one_signed_delivery_per_crossing(
    alerts_world: World, receiver: WebhookReceiver
) -> None:
    world = alerts_world
    secret = (await set_alerts(world, {"webhookUrl": receiver.url}))["webhookSecret"]
    await edit_plan(world, "dev", windows=[{"window": "5h", "usdLimit": 0.12}])
    await spend_big(world)

    await run_alerts(world.state)
    await run_alerts(world.state)

    [delivery] = receiver.received
    assert signature_valid(secret, delivery)
    assert not signature_valid("whsec_" + "0" * 64, delivery)
    body = delivery.json
    assert set(body) == {"type", "user", "data", "createdAt"}
    assert body["type"] == "usage_window" and body["user"] == "alice"
    assert body["data"]["window"] == "5h" and body["data"]["percent"] == 80
    assert body["createdAt"] == world.state.clock.now().isoformat()
    timestamp = int(delivery.headers["x-trollllm-signature"].split(",")[0].removeprefix("t="))
    assert timestamp == int(world.state.clock.now().timestamp())


async def test_deliveries_past_one_batch_are_all_sent_in_the_same_pass(
    alerts_world: World, smtp: SmtpServer, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = alerts_world
    monkeypatch.setattr(delivery, "BATCH", 1)
    await set_alerts(world, {"email": "alice@example.com", "webhookUrl": receiver.url})
    await edit_plan(world, "dev", windows=[{"window": "5h", "usdLimit": 0.12}])
    await spend_big(world)

    assert await run_alerts(world.state) == 2  # an email and a webhook: two batches of one
    assert len(smtp.inbox.messages) == 1
    assert len(receiver.received) == 1


async def test_a_failed_webhook_is_retried_with_backoff_until_the_receiver_takes_it(
    alerts_world: World, receiver: WebhookReceiver, clock: ManualClock
) -> None:
    world = alerts_world
    secret = (await set_alerts(world, {"webhookUrl": receiver.url}))["webhookSecret"]
    await edit_plan(world, "dev", windows=[{"window": "5h", "usdLimit": 0.12}])
    await spend_big(world)
    receiver.fail_next = 2

    assert await run_alerts(world.state) == 0  # 503: retried in 30 s
    assert await run_alerts(world.state) == 0 and len(receiver.received) == 1  # not due yet
    clock.advance(30)
    assert await run_alerts(world.state) == 0  # 503 again: retried in 60 s
    clock.advance(59)
    assert await run_alerts(world.state) == 0 and len(receiver.received) == 2
    clock.advance(1)
    assert await run_alerts(world.state) == 1

    assert len(receiver.received) == 3 and len(receiver.acknowledged) == 1
    assert len({d.headers["x-trollllm-delivery"] for d in receiver.received}) == 1
    assert len({d.body for d in receiver.received}) == 1
    assert all(signature_valid(secret, d) for d in receiver.received)


async def test_a_webhook_target_is_checked_again_on_its_address_at_delivery(
    alerts_world: World, receiver: WebhookReceiver
) -> None:
    world = alerts_world
    await set_alerts(world, {"webhookUrl": receiver.url.replace("http://", "https://")})
    await edit_plan(world, "dev", windows=[{"window": "5h", "usdLimit": 0.12}])
    await spend_big(world)
    # The operator turns private targets off after the URL was saved (as a DNS answer moving inside would).
    world.state.settings = world.state.settings.model_copy(update={"webhook_allow_private": False})

    await run_alerts(world.state)

    assert receiver.received == []
    async with world.state.sessions() as session:
        delivery = await session.scalar(select(AlertDelivery))
    assert delivery is not None and delivery.state == "failed"
    assert "private, loopback or link-local" in (delivery.last_error or "")


async def test_admins_hear_of_a_disabled_factory_key_and_a_provider_without_a_healthy_key(
    alerts_world: World, smtp: SmtpServer
) -> None:
    world = alerts_world
    await set_alerts(world, {"email": "root@example.com"}, admin=True)
    world.mock.set_key_status("fk-openai-one", 401)
    response = await world.gateway.client.post(
        "/v1/chat/completions", headers={"Authorization": f"Bearer {world.user.api_key}"}, json=BIG
    )
    assert response.status_code == 503, response.text
    await world.state.upstream.flush()

    await run_alerts(world.state)
    await run_alerts(world.state)

    shown = {n["type"]: n for n in await notifications(world, admin=True)}
    assert set(shown) == {"factory_key_disabled", "no_healthy_key"}
    assert shown["factory_key_disabled"]["data"]["provider"] == "openai"
    assert "fk-openai-one" not in str(shown)
    assert shown["no_healthy_key"]["data"] == {"provider": "openai"}
    subjects = sorted(" ".join(str(m["Subject"]).split()) for _, m in smtp.inbox.messages)
    assert len(subjects) == 2, subjects
    assert subjects[0].startswith(
        "TrollLLM alert: Factory key openai-1 (openai) is disabled: upstream answered 401"
    )
    assert subjects[1] == "TrollLLM alert: No healthy factory key for provider openai"
    assert await notifications(world) == []


async def test_admins_hear_once_of_settlements_waiting_in_the_outbox(alerts_world: World) -> None:
    world = alerts_world
    outbox = world.state.outbox
    outbox.directory.mkdir(parents=True, exist_ok=True)
    waiting = outbox.directory / "settlements-1-test.jsonl"
    waiting.write_text('{"waiting": 1}\n')

    await report_outbox(world.state, world.state.clock.now())
    await report_outbox(world.state, world.state.clock.now())
    [shown] = await notifications(world, admin=True)
    assert shown["type"] == "settlement_outbox" and shown["data"]["depth"] == 1

    waiting.unlink()
    await report_outbox(world.state, world.state.clock.now())  # empty: re-armed
    waiting.write_text('{"waiting": 1}\n{"waiting": 2}\n')
    await report_outbox(world.state, world.state.clock.now())
    assert [n["data"]["depth"] for n in await notifications(world, admin=True)] == [2, 1]


async def test_a_friend_key_model_cap_alerts_its_owner_at_80_percent(
    alerts_world: World, smtp: SmtpServer
) -> None:
    world = alerts_world
    client = world.gateway.client
    await set_alerts(world, {"email": "alice@example.com", "usagePercents": [80]})
    created = await client.post("/api/user/friend-key", headers=world.user.auth)
    friend_key = created.json()["friendKey"]
    limits = {"modelLimits": [{"modelId": OPENAI_MODEL, "limitUsd": 0.12, "enabled": True}]}
    assert (
        await client.put("/api/user/friend-key/limits", headers=world.user.auth, json=limits)
    ).status_code == 200
    response = await client.post(
        "/v1/chat/completions", headers={"Authorization": f"Bearer {friend_key}"}, json=BIG
    )
    assert response.status_code == 200, response.text

    await run_alerts(world.state)
    await run_alerts(world.state)

    [shown] = await notifications(world)
    assert shown["type"] == "friend_key_cap" and shown["data"]["modelId"] == OPENAI_MODEL
    assert shown["data"]["percent"] == 80 and shown["data"]["limitUsd"] == 0.12
    assert len(smtp.inbox.messages) == 1


async def test_a_plan_expiring_within_the_chosen_days_is_reminded_once(
    alerts_world: World, clock: ManualClock
) -> None:
    world = alerts_world
    await set_alerts(world, {"planExpiryDays": 3})
    await set_user(world, plan_expires_at=clock.now() + timedelta(days=3, hours=1))
    await run_alerts(world.state)
    assert await notifications(world) == []

    clock.advance(2 * 3600)
    await run_alerts(world.state)
    await run_alerts(world.state)

    [shown] = await notifications(world)
    assert shown["type"] == "plan_expiring" and shown["data"]["plan"] == "dev" and shown["data"]["days"] == 3


async def test_a_webhook_secret_is_kept_through_a_server_secret_rotation(
    alerts_world: World, receiver: WebhookReceiver
) -> None:
    world = alerts_world
    secret = (await set_alerts(world, {"webhookUrl": receiver.url}))["webhookSecret"]
    await edit_plan(world, "dev", windows=[{"window": "5h", "usdLimit": 0.12}])
    await spend_big(world)
    old = world.state.keybox
    report = await rotate_secret(world.state.sessions, old, NEW_SECRET.encode())
    world.state.keybox = KeyBox(NEW_SECRET.encode(), digest_key=old.digest_key)  # as a restart would load

    await run_alerts(world.state)

    assert report.webhook_secrets == 1
    [delivery] = receiver.acknowledged
    assert signature_valid(secret, delivery)
