"""SPEC §11: a webhook is delivered at least once through the durable outbox, also when the gateway (a real
`trollllm serve` process) is killed with SIGKILL between the crossing and the delivery, then restarted."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from alert_helpers import signature_valid, webhook_receiver
from conftest import TEST_SECRET
from helpers import Account
from instances import OPENAI_MODEL, PRICES, create_admin, login, start_instance, wait_ready

BIG = {
    "model": OPENAI_MODEL,
    "max_tokens": 4000,
    "messages": [{"role": "user", "content": "[mock reply_tokens=4000] hello"}],
}


def _call(base_url: str, account: Account, method: str, path: str, **kwargs: Any) -> httpx.Response:
    response = httpx.request(method, base_url + path, headers=account.auth, timeout=30, **kwargs)
    assert response.status_code < 300, response.text
    return response


def _set_up(base_url: str, mock_url: str, webhook_url: str) -> tuple[Account, str]:
    """A model, a factory key, alice on dev with a $0.12 5h window and a webhook: her key and the secret."""
    admin = login(base_url, "root")
    model = {
        "modelId": OPENAI_MODEL,
        "provider": "openai",
        "upstreamModel": "gpt-up",
        "maxOutputTokens": 4096,
    }
    _call(base_url, admin, "POST", "/api/admin/models", json={**model, **PRICES})
    key = {"name": "openai-1", "provider": "openai", "baseUrl": mock_url, "apiKey": "fk-openai-1"}
    _call(base_url, admin, "POST", "/api/admin/factory-keys", json=key)
    plans = _call(base_url, admin, "GET", "/api/admin/plans").json()["plans"]
    dev = {k: v for k, v in next(p for p in plans if p["name"] == "dev").items() if k != "name"}
    _call(
        base_url,
        admin,
        "PUT",
        "/api/admin/plans/dev",
        json={**dev, "windows": [{"window": "5h", "usdLimit": 0.12}]},
    )
    registered = httpx.post(
        base_url + "/api/auth/register", json={"username": "alice", "password": "pw-alice-12345"}
    )
    assert registered.status_code == 201, registered.text
    _call(base_url, admin, "PATCH", "/api/admin/users/alice", json={"plan": "dev"})
    alice = Account("alice", registered.json()["token"], "")
    alice = Account("alice", alice.token, _call(base_url, alice, "GET", "/api/user/api-key").json()["apiKey"])
    secret = _call(base_url, alice, "PUT", "/api/user/alerts", json={"webhookUrl": webhook_url}).json()[
        "webhookSecret"
    ]
    return alice, secret


async def test_a_webhook_is_delivered_once_after_the_gateway_is_killed_between_crossing_and_delivery(
    tmp_path: Path, mock_url: str
) -> None:
    directory = tmp_path / "gateway"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "TROLLLLM_DATA_DIR": str(directory),
        "TROLLLLM_SECRET": TEST_SECRET,
        "TROLLLLM_LOG_LEVEL": "WARNING",
        "TROLLLLM_ALERT_INTERVAL_S": "0.5",
        "TROLLLLM_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    async with webhook_receiver() as receiver:
        receiver.hang = True  # the first delivery is held unanswered: the gateway dies before it completes
        directory.mkdir()
        await asyncio.to_thread(create_admin, env)  # migrates the embedded database
        env["TROLLLLM_AUTO_MIGRATE"] = "false"  # so `serve` starts no `migrate` process of its own
        first = start_instance(directory, env)
        try:
            await asyncio.to_thread(wait_ready, [first])
            alice, secret = await asyncio.to_thread(_set_up, first.base_url, mock_url, receiver.url)
            async with httpx.AsyncClient(timeout=30) as client:
                spent = await client.post(
                    first.base_url + "/v1/chat/completions",
                    headers={"Authorization": f"Bearer {alice.api_key}"},
                    json=BIG,
                )
            assert spent.status_code == 200, spent.text
            await asyncio.wait_for(receiver.arrived.wait(), timeout=30)
        finally:
            first.stop(signal.SIGKILL)
        assert receiver.acknowledged == []

        receiver.hang = False
        second = start_instance(directory, env)
        try:
            await asyncio.to_thread(wait_ready, [second])
            deadline = time.monotonic() + 30
            while not receiver.acknowledged and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.5)  # three more passes: nothing is sent again
        finally:
            second.stop()

    assert len(receiver.acknowledged) == 1, receiver.received
    assert len(receiver.received) == 2  # the attempt cut by the kill, then the delivery
    assert len({d.headers["x-trollllm-delivery"] for d in receiver.received}) == 1
    assert len({d.body for d in receiver.received}) == 1
    assert all(signature_valid(secret, d) for d in receiver.received)
    body = receiver.acknowledged[0].json
    assert body["type"] == "usage_window" and body["user"] == "alice" and body["data"]["percent"] == 80
