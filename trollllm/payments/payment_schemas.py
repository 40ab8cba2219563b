"""Bodies of the checkout, webhook, history, referral and admin payment endpoints (SPEC §10)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, StrictStr, model_validator

from trollllm.billing.tables import LedgerEntry
from trollllm.fields import PageInfo, UsdAmount
from trollllm.money import Money
from trollllm.payments.tables import Payment


class CheckoutRequest(BaseModel):
    """`POST /api/user/checkout`: exactly one of `amountUsd` (a top-up) and `plan` (a plan purchase)."""

    amountUsd: UsdAmount | None = None
    plan: StrictStr | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _one_of(self) -> CheckoutRequest:
        if (self.amountUsd is None) == (self.plan is None):
            raise ValueError("give either amountUsd or plan")
        return self


class CheckoutStarted(BaseModel):
    """Where the browser goes to pay."""

    url: str


class WebhookReceived(BaseModel):
    """Stripe needs a 2xx; `outcome` says what the delivery did."""

    received: bool = True
    outcome: str = Field(description="granted, refunded, duplicate or ignored")


class HistoryItem(BaseModel):
    """One movement of money in (or a refund out)."""

    kind: str = Field(description="topup, redeem, plan_grant, admin_adjustment, referral or refund")
    amountUsd: float = Field(description="credits + refCredits moved; negative for a refund")
    credits: float
    refCredits: float
    description: str
    createdAt: datetime

    @classmethod
    def of(cls, entry: LedgerEntry) -> HistoryItem:
        """The view of a ledger entry."""
        return cls(
            kind=entry.kind,
            amountUsd=Money(entry.credits_delta_nanos + entry.ref_credits_delta_nanos).to_json(),
            credits=Money(entry.credits_delta_nanos).to_json(),
            refCredits=Money(entry.ref_credits_delta_nanos).to_json(),
            description=entry.reason,
            createdAt=entry.created_at,
        )


class HistoryPage(PageInfo):
    """`GET /api/user/payments`."""

    items: list[HistoryItem]


class ReferralsView(BaseModel):
    """`GET /api/user/referrals`."""

    inviteUrl: str
    code: str
    referees: int
    earnedUsd: float = Field(description="rebates granted as refCredits, net of refunds")


class PaymentView(BaseModel):
    """A payment as the admin sees it; `shortfallUsd` is what a refund could not take back."""

    paymentId: int
    username: str
    kind: str
    plan: str | None
    amountUsd: float
    status: str
    grantedUsd: float
    refundDueUsd: float
    refundedUsd: float
    shortfallUsd: float
    referrer: str | None
    rebateUsd: float
    rebateShortfallUsd: float
    sessionId: str
    createdAt: datetime
    paidAt: datetime | None

    @classmethod
    def of(cls, payment: Payment, username: str, referrer: str | None) -> PaymentView:
        """The admin view of a payment row."""
        return cls(
            paymentId=payment.id,
            username=username,
            kind=payment.kind,
            plan=payment.plan,
            amountUsd=Money(payment.amount_nanos).to_json(),
            status=payment.status,
            grantedUsd=Money(payment.granted_nanos).to_json(),
            refundDueUsd=Money(payment.refund_due_nanos).to_json(),
            refundedUsd=Money(payment.refunded_nanos).to_json(),
            shortfallUsd=Money(payment.refund_due_nanos - payment.refunded_nanos).to_json(),
            referrer=referrer,
            rebateUsd=Money(payment.rebate_nanos).to_json(),
            rebateShortfallUsd=Money(
                payment.rebate_reversal_due_nanos - payment.rebate_reversed_nanos
            ).to_json(),
            sessionId=payment.session_id,
            createdAt=payment.created_at,
            paidAt=payment.paid_at,
        )


class PaymentPage(PageInfo):
    """`GET /api/admin/payments`."""

    payments: list[PaymentView]


class ReferralRow(BaseModel):
    """One referral as the admin sees it."""

    referrer: str
    referee: str
    rebatesUsd: float
    createdAt: datetime


class ReferralList(BaseModel):
    """`GET /api/admin/referrals`."""

    referrals: list[ReferralRow]


class PlanPriceView(BaseModel):
    """A plan and its card price (null: not for sale)."""

    plan: str
    priceUsd: float | None


class PlanPriceUpdate(BaseModel):
    """`PUT /api/admin/plan-prices/{plan}`: a positive USD price, or null to stop selling it."""

    priceUsd: UsdAmount | None


class PlanPriceList(BaseModel):
    """`GET /api/admin/plan-prices`."""

    prices: list[PlanPriceView]
