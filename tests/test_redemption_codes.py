"""Redemption codes (SPEC §10): admin batches, exactly-once redemption, voiding, throttling, bad input."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from admin_helpers import post_json
from conftest import AppFactory, AppHarness
from helpers import Account, make_admin, register_user
from sqlalchemy import select

from trollllm.audit.tables import AuditEntry
from trollllm.billing.ledger import reconcile
from trollllm.billing.tables import LedgerEntry
from trollllm.clock import ManualClock
from trollllm.payments.codes import CODE_BITS, code_digest
from trollllm.payments.tables import RedemptionCode

CODE_SHAPE = re.compile(r"TRL(-[0-9A-HJKMNP-TV-Z]{7}){4}")


@pytest.fixture
async def admin(gateway: AppHarness) -> Account:
    return await make_admin(gateway)


async def create_batch(gateway: AppHarness, admin: Account, **body: Any) -> dict[str, Any]:
    body = {"count": 1, "amountUsd": 10, "balance": "credits", **body}
    response = await gateway.client.post("/api/admin/redemption-codes", json=body, headers=admin.auth)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def redeem(gateway: AppHarness, user: Account, code: str) -> Any:
    return await gateway.client.post("/api/user/redeem", json={"code": code}, headers=user.auth)


async def batch_row(gateway: AppHarness, admin: Account, batch_id: int) -> dict[str, Any]:
    response = await gateway.client.get("/api/admin/redemption-codes", headers=admin.auth)
    row: dict[str, Any] = next(b for b in response.json()["batches"] if b["batchId"] == batch_id)
    return row


async def test_a_batch_answers_its_codes_once_and_keeps_only_digests(
    gateway: AppHarness, admin: Account
) -> None:
    created = await create_batch(gateway, admin, count=3, note="launch")
    codes = created["codes"]
    assert len(set(codes)) == 3 and all(CODE_SHAPE.fullmatch(code) for code in codes)
    assert CODE_BITS >= 128
    async with gateway.state.sessions() as session:
        rows = list(await session.scalars(select(RedemptionCode)))
    assert {row.code_digest for row in rows} == {code_digest(code) for code in codes}
    listed = await batch_row(gateway, admin, created["batchId"])
    assert (listed["count"], listed["used"], listed["voided"], listed["note"]) == (3, 0, 0, "launch")
    assert all(code not in str(listed) for code in codes)


async def test_a_batch_downloads_as_csv(gateway: AppHarness, admin: Account) -> None:
    response = await gateway.client.post(
        "/api/admin/redemption-codes?format=csv", json={"count": 2, "amountUsd": 2.5}, headers=admin.auth
    )
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 2 and all(CODE_SHAPE.fullmatch(row["code"]) for row in rows)
    assert rows[0]["amountUsd"] == "2.5"


async def test_a_code_credits_the_balance_once_with_a_ledger_and_an_audit_entry(
    gateway: AppHarness, admin: Account
) -> None:
    alice = await register_user(gateway, "alice")
    created = await create_batch(gateway, admin, amountUsd=12.345678901)
    response = await redeem(gateway, alice, created["codes"][0].lower())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["amountUsd"], body["balance"], body["credits"], body["refCredits"]) == (
        12.345678901, "credits", 12.345678901, 0
    )  # fmt: skip
    again = await redeem(gateway, alice, created["codes"][0])
    assert again.status_code == 400 and again.json()["error"]["type"] == "invalid_code"
    async with gateway.state.sessions() as session:
        entries = list(await session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "redeem")))
        audits = list(
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "redemption.redeem"))
        )
        assert await reconcile(session) == []
    assert len(entries) == 1 and f"batch {created['batchId']}" in entries[0].reason
    assert len(audits) == 1 and audits[0].target == f"batch:{created['batchId']}"
    assert (await batch_row(gateway, admin, created["batchId"]))["used"] == 1


async def test_a_ref_credits_code_credits_ref_credits(gateway: AppHarness, admin: Account) -> None:
    alice = await register_user(gateway, "alice")
    created = await create_batch(gateway, admin, amountUsd=3, balance="refCredits")
    body = (await redeem(gateway, alice, created["codes"][0])).json()
    assert (body["credits"], body["refCredits"]) == (0, 3)


async def test_a_plan_code_grants_the_plan_as_an_upgrade_does(gateway: AppHarness, admin: Account) -> None:
    alice = await register_user(gateway, "alice")
    created = await create_batch(gateway, admin, amountUsd=0, plan="dev")
    body = (await redeem(gateway, alice, created["codes"][0])).json()
    assert (body["plan"], body["balance"], body["credits"]) == ("dev", None, 225)
    me = (await gateway.client.get("/api/user/me", headers=alice.auth)).json()
    assert me["plan"] == "dev" and me["planExpiresAt"] is not None


async def test_unknown_used_voided_and_expired_codes_are_one_error(
    gateway: AppHarness, admin: Account, clock: ManualClock
) -> None:
    alice, bob = await register_user(gateway, "alice"), await register_user(gateway, "bob")
    used = (await create_batch(gateway, admin))["codes"][0]
    assert (await redeem(gateway, alice, used)).status_code == 200
    voided_batch = await create_batch(gateway, admin)
    await gateway.client.post(
        f"/api/admin/redemption-codes/{voided_batch['batchId']}/void", headers=admin.auth
    )
    expiring = await create_batch(gateway, admin, expiresAt=(clock.now() + timedelta(hours=1)).isoformat())
    clock.advance(2 * 3600)
    unknown = "TRL-0000000-0000000-0000000-0000000"
    for code in (unknown, used, voided_batch["codes"][0], expiring["codes"][0]):
        response = await redeem(gateway, bob, code)
        assert response.status_code == 400, code
        assert response.json()["error"]["type"] == "invalid_code"
        assert response.json()["error"]["message"] == "This code is not valid"
    assert (await gateway.client.get("/api/user/me", headers=bob.auth)).json()["credits"] == 0


@pytest.mark.parametrize(
    "code", ["", "hello", "TRL-0000000", "TRL-IIIIIII-0000000-0000000-0000000", "x" * 64]
)
async def test_a_code_of_the_wrong_shape_is_refused_without_a_lookup(
    gateway: AppHarness, code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await register_user(gateway, "alice")

    def no_lookup(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a code of the wrong shape reached the database")

    monkeypatch.setattr("trollllm.payments.redemption.code_digest", no_lookup)
    response = await redeem(gateway, alice, code)
    assert response.status_code == 400
    assert response.json()["error"] | {"message": ""} == {
        "type": "invalid_code",
        "field": "code",
        "message": "",
    }


async def test_wrong_codes_are_throttled_per_user(gateway: AppHarness, admin: Account) -> None:
    alice = await register_user(gateway, "alice")
    good = (await create_batch(gateway, admin))["codes"][0]
    for _ in range(gateway.state.settings.redeem_failures_per_hour):
        assert (await redeem(gateway, alice, "TRL-0000000-0000000-0000000-0000000")).status_code == 400
    throttled = await redeem(gateway, alice, good)
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    bob = await register_user(gateway, "bob")
    # bob shares alice's address (the test client's): the address budget is spent too.
    assert (await redeem(gateway, bob, good)).status_code == 429


async def test_a_right_code_does_not_count_against_the_throttle(gateway: AppHarness, admin: Account) -> None:
    alice = await register_user(gateway, "alice")
    codes = (await create_batch(gateway, admin, count=12, amountUsd=1))["codes"]
    for code in codes:
        assert (await redeem(gateway, alice, code)).status_code == 200


async def test_voiding_a_batch_voids_only_unused_codes(gateway: AppHarness, admin: Account) -> None:
    alice = await register_user(gateway, "alice")
    created = await create_batch(gateway, admin, count=3)
    assert (await redeem(gateway, alice, created["codes"][0])).status_code == 200
    response = await gateway.client.post(
        f"/api/admin/redemption-codes/{created['batchId']}/void", headers=admin.auth
    )
    assert response.json() == {"batchId": created["batchId"], "voided": 2}
    row = await batch_row(gateway, admin, created["batchId"])
    assert (row["used"], row["voided"]) == (1, 2)


async def test_one_code_can_be_voided(gateway: AppHarness, admin: Account) -> None:
    created = await create_batch(gateway, admin, count=2)
    path = f"/api/admin/redemption-codes/{created['batchId']}/void"
    response = await gateway.client.post(path, json={"code": created["codes"][1]}, headers=admin.auth)
    assert response.json()["voided"] == 1
    assert (
        await gateway.client.post(path, json={"code": created["codes"][1]}, headers=admin.auth)
    ).status_code == 400
    assert (await batch_row(gateway, admin, created["batchId"]))["voided"] == 1


async def test_concurrent_redemptions_of_one_code_grant_once(
    app_factory: AppFactory, database_url: str
) -> None:
    gateway = await app_factory(database_url, redeem_failures_per_hour=100)  # all 20 reach the database
    admin = await make_admin(gateway)
    users = [await register_user(gateway, f"user{n}") for n in range(5)]
    code = (await create_batch(gateway, admin, amountUsd=7))["codes"][0]
    answers = await asyncio.gather(*(redeem(gateway, users[n % 5], code) for n in range(20)))
    assert sorted(answer.status_code for answer in answers) == [200] + [400] * 19
    async with gateway.state.sessions() as session:
        grants = list(await session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "redeem")))
        assert await reconcile(session) == []
    assert len(grants) == 1 and grants[0].credits_delta_nanos == 7_000_000_000


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"count": 0, "amountUsd": 1}, "count"),
        ({"count": 1001, "amountUsd": 1}, "count"),
        ({"count": "3", "amountUsd": 1}, "count"),
        ({"count": 1, "amountUsd": "ten"}, "amountUsd"),
        ({"count": 1, "amountUsd": 1e12}, "amountUsd"),
        ({"count": 1, "amountUsd": -1}, "amountUsd"),
        ({"count": 1, "amountUsd": 1, "balance": "gold"}, "balance"),
        ({"count": 1, "amountUsd": 1, "expiresAt": "tomorrow"}, "expiresAt"),
        ({"count": 1, "amountUsd": 1, "note": "x" * 201}, "note"),
    ],
)
async def test_a_bad_batch_is_refused_naming_the_field(
    gateway: AppHarness, admin: Account, body: dict[str, Any], field: str
) -> None:
    response = await post_json(gateway, admin, "/api/admin/redemption-codes", body)
    assert response.status_code in (400, 422), response.text
    assert field in response.json()["error"].get("field", "") + response.json()["error"]["message"]


async def test_a_batch_for_an_unknown_or_free_plan_is_refused(gateway: AppHarness, admin: Account) -> None:
    for plan in ("gold", "free"):
        response = await post_json(gateway, admin, "/api/admin/redemption-codes", {"count": 1, "plan": plan})
        assert response.status_code == 400 and response.json()["error"]["field"] == "plan"


async def test_users_cannot_create_batches(gateway: AppHarness) -> None:
    alice = await register_user(gateway, "alice")
    response = await gateway.client.post(
        "/api/admin/redemption-codes", json={"count": 1, "amountUsd": 1}, headers=alice.auth
    )
    assert response.status_code == 403
