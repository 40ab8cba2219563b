"""SPEC §11 `GET/PUT /api/user/alerts`: defaults, partial updates, a webhook secret shown once, and bad
input refused with a 400 naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import AppFactory, AppHarness
from helpers import register_user


async def put_alerts(gateway: AppHarness, auth: dict[str, str], body: Any) -> Any:
    return await gateway.client.put("/api/user/alerts", headers=auth, json=body)


async def test_alerts_start_with_the_default_thresholds_and_no_channel(gateway: AppHarness) -> None:
    alice = await register_user(gateway, "alice")

    shown = (await gateway.client.get("/api/user/alerts", headers=alice.auth)).json()

    assert shown == {
        "email": None,
        "webhookUrl": None,
        "webhookSecret": None,
        "lowBalanceUsd": None,
        "planExpiryDays": 7,
        "usagePercents": [80, 100],
        "emailEnabled": False,
    }


async def test_a_partial_update_keeps_the_fields_left_out_and_null_turns_one_off(gateway: AppHarness) -> None:
    alice = await register_user(gateway, "alice")
    first = await put_alerts(gateway, alice.auth, {"email": "alice@example.com", "lowBalanceUsd": 5.25})
    assert first.status_code == 200, first.text

    second = (await put_alerts(gateway, alice.auth, {"usagePercents": [100, 50, 50], "email": None})).json()

    assert second["lowBalanceUsd"] == 5.25
    assert second["email"] is None
    assert second["usagePercents"] == [50, 100]
    assert (await gateway.client.get("/api/user/alerts", headers=alice.auth)).json() == second


async def test_a_new_webhook_url_answers_its_signing_secret_once(
    app_factory: AppFactory, embedded_database_url: str
) -> None:
    gateway = await app_factory(embedded_database_url, webhook_allow_private=True)
    alice = await register_user(gateway, "alice")

    set_url = (await put_alerts(gateway, alice.auth, {"webhookUrl": "http://127.0.0.1:9/hook"})).json()
    same_url = (await put_alerts(gateway, alice.auth, {"webhookUrl": "http://127.0.0.1:9/hook"})).json()
    shown = (await gateway.client.get("/api/user/alerts", headers=alice.auth)).json()
    new_url = (await put_alerts(gateway, alice.auth, {"webhookUrl": "http://127.0.0.1:10/hook"})).json()

    assert set_url["webhookSecret"].startswith("whsec_") and len(set_url["webhookSecret"]) == 70
    assert same_url["webhookSecret"] is None and shown["webhookSecret"] is None
    assert new_url["webhookSecret"] not in (None, set_url["webhookSecret"])


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost:8443/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
    ],
)
async def test_a_webhook_to_a_private_loopback_or_link_local_address_is_refused(
    gateway: AppHarness, url: str
) -> None:
    alice = await register_user(gateway, "alice")

    refused = await put_alerts(gateway, alice.auth, {"webhookUrl": url})

    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["field"] == "webhookUrl" and "TROLLLLM_WEBHOOK_ALLOW_PRIVATE" in error["message"]


async def test_a_webhook_to_loopback_is_accepted_when_the_operator_allows_private_targets(
    app_factory: AppFactory, embedded_database_url: str
) -> None:
    gateway = await app_factory(embedded_database_url, webhook_allow_private=True)
    alice = await register_user(gateway, "alice")

    accepted = await put_alerts(gateway, alice.auth, {"webhookUrl": "https://127.0.0.1:8443/hook"})

    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["webhookUrl"] == "https://127.0.0.1:8443/hook"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lowBalanceUsd": -1}, "lowBalanceUsd"),
        ({"lowBalanceUsd": 0}, "lowBalanceUsd"),
        ({"lowBalanceUsd": 1e12}, "lowBalanceUsd"),
        ({"lowBalanceUsd": "5"}, "lowBalanceUsd"),
        ({"lowBalanceUsd": True}, "lowBalanceUsd"),
        ({"lowBalanceUsd": 0.0000000001}, "lowBalanceUsd"),
        ({"planExpiryDays": 0}, "planExpiryDays"),
        ({"planExpiryDays": -3}, "planExpiryDays"),
        ({"planExpiryDays": 100000}, "planExpiryDays"),
        ({"planExpiryDays": 2.5}, "planExpiryDays"),
        ({"planExpiryDays": "7"}, "planExpiryDays"),
        ({"usagePercents": 80}, "usagePercents"),
        ({"usagePercents": [80, 0]}, "usagePercents[1]"),
        ({"usagePercents": [-5]}, "usagePercents[0]"),
        ({"usagePercents": [80, 1000]}, "usagePercents[1]"),
        ({"usagePercents": ["80"]}, "usagePercents[0]"),
        ({"usagePercents": [80.5]}, "usagePercents[0]"),
        ({"usagePercents": list(range(1, 20))}, "usagePercents"),
        ({"email": "not an address"}, "email"),
        ({"email": "a@b.c\r\nBcc: x@y.z"}, "email"),
        ({"email": 5}, "email"),
        ({"webhookUrl": "not a url"}, "webhookUrl"),
        ({"webhookUrl": "ftp://example.com/hook"}, "webhookUrl"),
        ({"webhookUrl": "http://example.com/hook"}, "webhookUrl"),
        ({"webhookUrl": "https://user:pw@example.com/hook"}, "webhookUrl"),
        ({"webhookUrl": "https://example.com:99999/hook"}, "webhookUrl"),
        ({"webhookUrl": "https://" + "a" * 2100 + ".com/"}, "webhookUrl"),
        ({"webhookUrl": 42}, "webhookUrl"),
        ({"lowBalance": 5}, "lowBalance"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(
    gateway: AppHarness, body: dict[str, Any], field: str
) -> None:
    alice = await register_user(gateway, "alice")

    refused = await put_alerts(gateway, alice.auth, body)

    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error" and error["field"] == field, error
    assert (await gateway.client.get("/api/user/alerts", headers=alice.auth)).json()["usagePercents"] == [
        80,
        100,
    ]


async def test_a_body_that_is_not_a_json_object_is_a_400(gateway: AppHarness) -> None:
    alice = await register_user(gateway, "alice")

    for content in (b"[1, 2]", b"{not json"):
        refused = await gateway.client.put("/api/user/alerts", headers=alice.auth, content=content)
        assert refused.status_code == 400, refused.text


async def test_alerts_and_notifications_need_a_session(gateway: AppHarness) -> None:
    for method, path in (
        ("GET", "/api/user/alerts"),
        ("PUT", "/api/user/alerts"),
        ("GET", "/api/user/notifications"),
    ):
        assert (await gateway.client.request(method, path, json={})).status_code == 401
