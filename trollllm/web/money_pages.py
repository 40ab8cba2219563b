"""`/dashboard/billing`: redeem a code, top up by card, the billing history, the invite link (SPEC §10).

Rendered from the same services as the JSON API; the page's actions (redeem, top up, copy the link) live in
`static/money.js` and call the JSON API with the session cookie and the CSRF header.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from trollllm.payments import history, referrals
from trollllm.payments.tables import PlanPrice
from trollllm.plans.user_routes import current_account
from trollllm.state import get_state
from trollllm.web.render import page
from trollllm.web.session import csrf_token, page_user

router = APIRouter(include_in_schema=False)
HISTORY_ROWS = 20


@router.get("/dashboard/billing")
async def billing_page(request: Request) -> Response:
    """Balances, the redeem form, top-up presets (when payments are on), history and referrals."""
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    state = get_state(request)
    user, _plan = await current_account(state, user)
    summary = await referrals.summary_of(state, user.id)
    async with state.sessions() as session:
        entries, total = await history.money_in(session, user.id, page=1, limit=HISTORY_ROWS)
        prices = list(await session.scalars(select(PlanPrice).order_by(PlanPrice.plan)))
    settings = state.settings
    outcome = request.query_params.get("checkout")
    return page(
        "billing.html",
        user=user,
        csrf=csrf_token(request),
        current="billing",
        payments_on=settings.payments_enabled,
        presets=[f"{amount:g}" for amount in settings.topup_presets],
        minimum=f"{settings.topup_min_usd:g}",
        plan_prices=prices,
        items=entries,
        total=total,
        invite_url=f"{request.base_url}register?ref={summary.code}",
        referees=summary.referees,
        earned_nanos=summary.earned.nanos,
        notice={"success": "Payment received: your balance updates as soon as Stripe confirms it.",
                "cancelled": "Checkout cancelled; nothing was charged."}.get(outcome or ""),
    )  # fmt: skip
