"""`/admin/redemption-codes` (create a batch, download its codes, void) and `/admin/payments` (card payments
with refund shortfalls, referrals, plan prices). The writes go through the JSON API from `static/money.js`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import aliased
from starlette.responses import Response

from trollllm.accounts.tables import User
from trollllm.payments import redemption, referrals
from trollllm.payments.tables import Payment, PlanPrice
from trollllm.plans.tables import Plan
from trollllm.state import get_state
from trollllm.web.admin.access import admin_page, admin_view

router = APIRouter(include_in_schema=False)
PAYMENT_ROWS = 100


@router.get("/admin/redemption-codes")
async def codes_page(request: Request) -> Response:
    """Every batch with its use, the create form, and a void action per batch."""
    admin = await admin_page(request)
    if isinstance(admin, Response):
        return admin
    async with get_state(request).sessions() as session:
        batches = await redemption.list_batches(session)
        plans = list(
            await session.scalars(select(Plan.name).where(Plan.api_access.is_(True)).order_by(Plan.name))
        )
    return admin_view(
        request, "admin/redemption_codes.html", admin, "admin-codes", batches=batches, plans=plans
    )


@router.get("/admin/payments")
async def payments_page(request: Request) -> Response:
    """The latest card payments, referrals and plan prices."""
    admin = await admin_page(request)
    if isinstance(admin, Response):
        return admin
    referrer = aliased(User)
    async with get_state(request).sessions() as session:
        rows = await session.execute(
            select(Payment, User.username, referrer.username)
            .join(User, User.id == Payment.user_id)
            .outerjoin(referrer, referrer.id == Payment.referrer_id)
            .order_by(Payment.created_at.desc(), Payment.id.desc())
            .limit(PAYMENT_ROWS)
        )
        payments = [
            (payment, name, ref) for payment, name, ref in rows
        ]  # nano-dollars, for the money filters
        referral_rows = await referrals.list_referrals(session)
        prices = list(await session.scalars(select(PlanPrice).order_by(PlanPrice.plan)))
    settings = get_state(request).settings
    return admin_view(
        request, "admin/payments.html", admin, "admin-payments", payments=payments, referrals=referral_rows,
        prices=prices, payments_on=settings.payments_enabled, percent=f"{settings.referral_percent:g}",
    )  # fmt: skip
