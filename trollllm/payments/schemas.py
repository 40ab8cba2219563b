"""Request and response bodies of the money-in endpoints (SPEC §10)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, StrictStr, field_validator, model_validator

from trollllm.fields import UsdAmount
from trollllm.money import Money
from trollllm.payments.tables import RedemptionBatch

Balance = Literal["credits", "refCredits"]
MAX_CODES_PER_BATCH = 1000
MAX_CODE_USD = Money.from_usd(1_000_000)


class NewBatch(BaseModel):
    """`POST /api/admin/redemption-codes`: money codes (`amountUsd` > 0) or plan codes (`plan`)."""

    count: int = Field(ge=1, le=MAX_CODES_PER_BATCH, strict=True)
    amountUsd: UsdAmount = Field(default=Money.ZERO, description="USD each code grants; 0 with `plan`")
    balance: Balance = "credits"
    expiresAt: AwareDatetime | None = None
    plan: StrictStr | None = Field(default=None, max_length=64, description="a paid plan granted instead")
    note: StrictStr = Field(default="", max_length=200)

    @field_validator("amountUsd")
    @classmethod
    def _amount_in_range(cls, value: Money) -> Money:
        if value.nanos < 0 or value.nanos > MAX_CODE_USD.nanos:
            raise ValueError("must be between 0 and 1000000")
        return value

    @model_validator(mode="after")
    def _money_or_plan(self) -> NewBatch:
        if self.plan is None and not self.amountUsd:
            raise ValueError("amountUsd must be positive (or give a plan)")
        if self.plan is not None and self.amountUsd:
            raise ValueError("a plan code grants the plan, not money: leave amountUsd out")
        return self


class BatchView(BaseModel):
    """A batch as `GET /api/admin/redemption-codes` lists it."""

    batchId: int
    count: int
    used: int
    voided: int
    amountUsd: float
    balance: str
    plan: str | None
    expiresAt: datetime | None
    note: str
    createdBy: str
    createdAt: datetime
    amount_nanos: int = Field(exclude=True)  # the exact amount, for the pages (the API shows amountUsd)

    @classmethod
    def of(cls, batch: RedemptionBatch, *, used: int, voided: int) -> BatchView:
        """The view of a batch row with its counts."""
        return cls(
            batchId=batch.id,
            count=batch.count,
            used=used,
            voided=voided,
            amountUsd=Money(batch.amount_nanos).to_json(),
            balance=batch.balance,
            plan=batch.plan,
            expiresAt=batch.expires_at,
            note=batch.note,
            createdBy=batch.created_by,
            createdAt=batch.created_at,
            amount_nanos=batch.amount_nanos,
        )


class CreatedBatch(BaseModel):
    """201 of `POST /api/admin/redemption-codes`: the codes, shown this once."""

    batchId: int
    codes: list[str]


class BatchList(BaseModel):
    """`GET /api/admin/redemption-codes`."""

    batches: list[BatchView]


class VoidRequest(BaseModel):
    """`POST /api/admin/redemption-codes/{batchId}/void`: every unused code, or only `code`."""

    code: StrictStr | None = Field(default=None, max_length=64)


class Voided(BaseModel):
    """How many codes were voided."""

    batchId: int
    voided: int


class RedeemRequest(BaseModel):
    """`POST /api/user/redeem`."""

    code: StrictStr = Field(max_length=64)


class RedeemResult(BaseModel):
    """What a redemption granted and the balances after it."""

    batchId: int
    amountUsd: float = Field(description="USD granted (0 for a plan code)")
    balance: str | None = Field(description="the balance credited; null for a plan code")
    plan: str | None = Field(description="the plan granted by a plan code (SPEC §5), else null")
    credits: float
    refCredits: float
