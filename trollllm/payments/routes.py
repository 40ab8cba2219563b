"""The user's money-in endpoints and Stripe's webhook (SPEC §10).

- `POST /api/user/redeem` (see `redemption_routes`)
- `POST /api/user/checkout` `{amountUsd}` | `{plan}` → `{url}`; 404 when payments are off
- `POST /api/webhooks/stripe`: Stripe's signed events → `{received: true, outcome}`
- `GET /api/user/payments?page=&limit=` → the user's top-ups, codes, grants and rebates, newest first
- `GET /api/user/referrals` → `{inviteUrl, code, referees, earnedUsd}`
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from trollllm.accounts.sessions import CurrentUser
from trollllm.fields import DEFAULT_PAGE_SIZE, PageNumber, PageSize, page_info
from trollllm.payments import checkout, history, referrals
from trollllm.payments.payment_schemas import (
    CheckoutRequest,
    CheckoutStarted,
    HistoryItem,
    HistoryPage,
    ReferralsView,
    WebhookReceived,
)
from trollllm.payments.redemption_routes import user_router
from trollllm.state import get_state

router = APIRouter(tags=["payments"])
router.include_router(user_router)


@router.post("/api/user/checkout", response_model=CheckoutStarted)
async def start_checkout(body: CheckoutRequest, request: Request, user: CurrentUser) -> CheckoutStarted:
    """A Stripe Checkout Session for a top-up or a plan; the browser goes to its `url` to pay."""
    state = get_state(request)
    url = await checkout.start_checkout(
        state,
        user,
        amount=body.amountUsd.to_decimal() if body.amountUsd is not None else None,
        plan_name=body.plan,
        base_url=str(request.base_url),
    )
    return CheckoutStarted(url=url)


@router.post("/api/webhooks/stripe", response_model=WebhookReceived)
async def stripe_webhook(request: Request) -> WebhookReceived:
    """Stripe's events: the signature (`Stripe-Signature`) must hold for exactly this body (400 if not)."""
    state = get_state(request)
    checkout.require_payments(state)
    outcome = await checkout.handle_webhook(
        state, await request.body(), request.headers.get("stripe-signature")
    )
    return WebhookReceived(outcome=outcome)


@router.get("/api/user/payments", response_model=HistoryPage)
async def list_payments(
    request: Request, user: CurrentUser, page: PageNumber = 1, limit: PageSize = DEFAULT_PAGE_SIZE
) -> HistoryPage:
    """Money into (and refunds out of) the caller's balances, newest first; charges are in the history."""
    async with get_state(request).sessions() as session:
        entries, total = await history.money_in(session, user.id, page=page, limit=limit)
    return HistoryPage(
        items=[HistoryItem.of(entry) for entry in entries], **page_info(total, page, limit).model_dump()
    )


@router.get("/api/user/referrals", response_model=ReferralsView)
async def my_referrals(request: Request, user: CurrentUser) -> ReferralsView:
    """The caller's invite link, how many users registered through it, and the rebates earned."""
    summary = await referrals.summary_of(get_state(request), user.id)
    return ReferralsView(
        inviteUrl=f"{request.base_url}register?ref={summary.code}",
        code=summary.code,
        referees=summary.referees,
        earnedUsd=summary.earned.to_json(),
    )
