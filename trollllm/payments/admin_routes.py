"""Admin endpoints of money in (SPEC §10), mounted under `/api/admin` behind the admin check.

- the redemption code batches (see `redemption_routes`)
- `GET /api/admin/payments?page=&limit=` → card payments with what refunds could not take back
- `GET /api/admin/referrals` → who invited whom and the rebates kept
- `GET /api/admin/plan-prices`, `PUT /api/admin/plan-prices/{plan}` `{priceUsd}` → which plans are for sale
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from trollllm.accounts.sessions import CurrentAdmin
from trollllm.accounts.tables import User
from trollllm.audit.service import record_audit
from trollllm.db import transaction
from trollllm.errors import InvalidRequest, NotFound
from trollllm.fields import DEFAULT_PAGE_SIZE, PageNumber, PageSize, page_info, page_offset
from trollllm.money import Money
from trollllm.payments import referrals
from trollllm.payments.payment_schemas import (
    PaymentPage,
    PaymentView,
    PlanPriceList,
    PlanPriceUpdate,
    PlanPriceView,
    ReferralList,
    ReferralRow,
)
from trollllm.payments.redemption_routes import admin_router
from trollllm.payments.tables import Payment, PlanPrice
from trollllm.plans.service import find_plan, is_paid
from trollllm.plans.tables import Plan
from trollllm.state import get_state

router = APIRouter()
router.include_router(admin_router)


@router.get("/payments", response_model=PaymentPage)
async def list_payments(
    request: Request, page: PageNumber = 1, limit: PageSize = DEFAULT_PAGE_SIZE
) -> PaymentPage:
    """Every checkout, newest first: status, what it granted, refunds and their shortfall, the rebate."""
    referrer = aliased(User)
    async with get_state(request).sessions() as session:
        total = int(await session.scalar(select(func.count()).select_from(Payment)) or 0)
        rows = await session.execute(
            select(Payment, User.username, referrer.username)
            .join(User, User.id == Payment.user_id)
            .outerjoin(referrer, referrer.id == Payment.referrer_id)
            .order_by(Payment.created_at.desc(), Payment.id.desc())
            .offset(page_offset(page, limit))
            .limit(limit)
        )
        views = [PaymentView.of(payment, name, ref) for payment, name, ref in rows]
    return PaymentPage(payments=views, **page_info(total, page, limit).model_dump())


@router.get("/referrals", response_model=ReferralList)
async def list_referrals(request: Request) -> ReferralList:
    """Every referral, newest first, with the rebates the referrer keeps from the referee's payments."""
    async with get_state(request).sessions() as session:
        rows = await referrals.list_referrals(session)
    return ReferralList(
        referrals=[
            ReferralRow(referrer=a, referee=b, rebatesUsd=kept.to_json(), createdAt=when)
            for a, b, kept, when in rows
        ]
    )


@router.get("/plan-prices", response_model=PlanPriceList)
async def list_plan_prices(request: Request) -> PlanPriceList:
    """Every paid plan and its card price (null: not for sale)."""
    async with get_state(request).sessions() as session:
        rows = await session.execute(
            select(Plan.name, PlanPrice.price_nanos)
            .outerjoin(PlanPrice, PlanPrice.plan == Plan.name)
            .where(Plan.api_access.is_(True))
            .order_by(Plan.name)
        )
        prices = [
            PlanPriceView(plan=name, priceUsd=Money(price).to_json() if price is not None else None)
            for name, price in rows
        ]
    return PlanPriceList(prices=prices)


@router.put("/plan-prices/{plan}", response_model=PlanPriceView)
async def set_plan_price(
    plan: str, body: PlanPriceUpdate, request: Request, admin: CurrentAdmin
) -> PlanPriceView:
    """Sell a paid plan by card at `priceUsd` (> 0, whole cents), or stop selling it (null)."""
    state = get_state(request)
    price = body.priceUsd
    if price is not None and (price.nanos <= 0 or price.nanos % 10_000_000):
        raise InvalidRequest("A plan's price is a positive number of whole cents", field="priceUsd")
    async with transaction(state.sessions) as session:
        row = await find_plan(session, plan)
        if row is None or not is_paid(row):
            raise NotFound("No paid plan of that name", field="plan")
        existing = await session.get(PlanPrice, plan, with_for_update=True)
        before = {"priceUsd": Money(existing.price_nanos).to_json() if existing else None}
        if price is None:
            if existing is not None:
                await session.delete(existing)
        elif existing is None:
            session.add(PlanPrice(plan=plan, price_nanos=price.nanos))
        else:
            existing.price_nanos = price.nanos
        await session.flush()
        after = {"priceUsd": price.to_json() if price is not None else None}
        await record_audit(
            session, state, actor=admin.username, action="plan.price", target=f"plan:{plan}",
            before=before, after=after,
        )  # fmt: skip
    return PlanPriceView(plan=plan, priceUsd=after["priceUsd"])
