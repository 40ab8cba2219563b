"""Helpers of the operator API tests: admin calls and a snapshot of everything an admin write can change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from conftest import AppHarness
from helpers import Account
from sqlalchemy import func, select

from trollllm.accounts.tables import User
from trollllm.audit.tables import AuditEntry
from trollllm.billing.tables import LedgerEntry
from trollllm.plans.tables import Plan


async def post_json(
    gateway: AppHarness, admin: Account, path: str, body: object, method: str = "POST"
) -> httpx.Response:
    """Send `body` as JSON text that may hold NaN and Infinity (httpx's own encoder refuses them)."""
    return await gateway.client.request(
        method,
        path,
        content=json.dumps(body),
        headers={**admin.auth, "content-type": "application/json"},
    )


async def set_plan(gateway: AppHarness, admin: Account, username: str, plan: str) -> httpx.Response:
    """PATCH a user's plan as `admin`."""
    return await gateway.client.patch(f"/api/admin/users/{username}", json={"plan": plan}, headers=admin.auth)


async def adjust(
    gateway: AppHarness,
    admin: Account,
    username: str,
    amount: object,
    balance: str = "credits",
    reason: str = "support ticket 42",
) -> httpx.Response:
    """POST a credits adjustment as `admin`."""
    body = {"amountUsd": amount, "balance": balance, "reason": reason}
    return await post_json(gateway, admin, f"/api/admin/users/{username}/credits", body)


async def admin_view(gateway: AppHarness, admin: Account, username: str) -> dict[str, Any]:
    """The user as `GET /api/admin/users` shows it."""
    response = await gateway.client.get("/api/admin/users", params={"search": username}, headers=admin.auth)
    assert response.status_code == 200, response.text
    matches = [user for user in response.json()["users"] if user["username"] == username]
    assert len(matches) == 1
    view: dict[str, Any] = matches[0]
    return view


@dataclass(frozen=True)
class Books:
    """Every user row, plan row, ledger and audit count: equal before and after a refused write."""

    users: tuple[tuple[Any, ...], ...]
    plans: tuple[tuple[Any, ...], ...]
    ledger_entries: int
    audit_entries: int


async def books(gateway: AppHarness) -> Books:
    """Read the books (users, plans, ledger and audit counts)."""
    async with gateway.state.sessions() as session:
        users = await session.execute(
            select(
                User.username, User.role, User.is_active, User.plan, User.credits_nanos,
                User.ref_credits_nanos, User.plan_start_date, User.plan_expires_at, User.total_tokens,
                User.token_version,
            ).order_by(User.id)
        )  # fmt: skip
        plans = await session.execute(
            select(
                Plan.name, Plan.api_access, Plan.rpm, Plan.credit_grant_nanos, Plan.monthly_token_limit,
                Plan.byok_rpm,
            ).order_by(Plan.name)
        )  # fmt: skip
        ledger = await session.scalar(select(func.count()).select_from(LedgerEntry))
        audit = await session.scalar(select(func.count()).select_from(AuditEntry))
    return Books(
        users=tuple(tuple(row) for row in users),
        plans=tuple(tuple(row) for row in plans),
        ledger_entries=int(ledger or 0),
        audit_entries=int(audit or 0),
    )
