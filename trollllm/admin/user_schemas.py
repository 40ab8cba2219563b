"""Request and response bodies of the admin user, credits and ledger endpoints (SPEC §7)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool, StrictStr, field_validator, model_validator

from trollllm.accounts.schemas import AccountView
from trollllm.accounts.tables import User
from trollllm.billing.tables import LedgerEntry
from trollllm.fields import PageInfo, UsdAmount
from trollllm.money import Money

UserSort = Literal[
    "username", "-username", "createdAt", "-createdAt", "credits", "-credits", "refCredits", "-refCredits",
    "tokensUsed", "-tokensUsed", "monthlyTokensUsed", "-monthlyTokensUsed", "plan", "-plan",
    "totalInputTokens", "-totalInputTokens", "totalOutputTokens", "-totalOutputTokens",
]  # fmt: skip
Role = Literal["user", "admin"]
Balance = Literal["credits", "refCredits"]


class AdminUserView(AccountView):
    """A user as the admin list shows it: plan, role, balances in USD, token counters and dates."""

    @classmethod
    def of(cls, user: User) -> AdminUserView:
        """The admin view of a user row."""
        return cls(**cls.fields_of(user))

    def audit_snapshot(self) -> dict[str, Any]:
        """The fields an admin write can change, for the audit log."""
        return self.model_dump(
            mode="json",
            include={"role", "isActive", "plan", "credits", "refCredits", "planStartDate", "planExpiresAt"},
        )


class UserPage(PageInfo):
    """`GET /api/admin/users`."""

    users: list[AdminUserView]


class UserUpdate(BaseModel):
    """`PATCH /api/admin/users/{username}`: at least one of `plan`, `role`, `isActive`."""

    plan: StrictStr | None = Field(default=None, max_length=64)
    role: Role | None = None
    isActive: StrictBool | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> UserUpdate:
        if self.plan is None and self.role is None and self.isActive is None:
            raise ValueError("give at least one of plan, role, isActive")
        return self


class CreditsAdjustment(BaseModel):
    """`POST /api/admin/users/{username}/credits`: positive grants, negative deducts."""

    amountUsd: UsdAmount = Field(description="non-zero USD; negative deducts (never below zero)")
    balance: Balance
    reason: StrictStr = Field(min_length=1, max_length=500)

    @field_validator("amountUsd")
    @classmethod
    def _not_zero(cls, value: Money) -> Money:
        if not value:
            raise ValueError("must not be zero")
        return value

    @field_validator("reason")
    @classmethod
    def _reason_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class LedgerEntryView(BaseModel):
    """One ledger entry; deltas in USD (negative takes money out)."""

    id: int
    username: str
    kind: str
    creditsDelta: float
    refCreditsDelta: float
    reason: str
    actor: str
    requestId: str | None
    createdAt: datetime

    @classmethod
    def of(cls, entry: LedgerEntry, username: str) -> LedgerEntryView:
        """The view of a ledger row of `username`."""
        return cls(
            id=entry.id,
            username=username,
            kind=entry.kind,
            creditsDelta=Money(entry.credits_delta_nanos).to_json(),
            refCreditsDelta=Money(entry.ref_credits_delta_nanos).to_json(),
            reason=entry.reason,
            actor=entry.actor,
            requestId=entry.request_id,
            createdAt=entry.created_at,
        )


class CreditsResult(BaseModel):
    """The user's balances after an adjustment, and its ledger entry."""

    username: str
    credits: float
    refCredits: float
    entry: LedgerEntryView


class LedgerPage(PageInfo):
    """`GET /api/admin/ledger`."""

    entries: list[LedgerEntryView]
