"""`/dashboard/alerts`: the user's notifications, newest first, and their alert channels and thresholds
(saved through `PUT /api/user/alerts` by the page's script)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from trollllm.alerts.schemas import DEFAULT_PLAN_EXPIRY_DAYS, DEFAULT_USAGE_PERCENTS
from trollllm.alerts.tables import AlertSettings, Notification
from trollllm.money import Money
from trollllm.state import get_state
from trollllm.web.render import page, usd_number
from trollllm.web.session import csrf_token, page_user

router = APIRouter(include_in_schema=False)

_SHOWN = 50


@router.get("/dashboard/alerts")
async def alerts_page(request: Request) -> Response:
    """The notification list and the alert settings form."""
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    state = get_state(request)
    async with state.sessions() as session:
        settings = await session.get(AlertSettings, user.id)
        notifications = list(
            await session.scalars(
                select(Notification)
                .where(Notification.user_id == user.id)
                .order_by(Notification.id.desc())
                .limit(_SHOWN)
            )
        )
    percents = orjson.loads(settings.usage_percents) if settings else list(DEFAULT_USAGE_PERCENTS)
    low_balance = settings.low_balance_nanos if settings else None
    return page(
        "alerts.html",
        user=user,
        csrf=csrf_token(request),
        current="alerts",
        notifications=notifications,
        email=settings.email if settings else None,
        webhook_url=settings.webhook_url if settings else None,
        low_balance=usd_number(low_balance) if low_balance is not None else "",
        low_balance_text=Money(low_balance).format_balance() if low_balance is not None else None,
        expiry_days=settings.plan_expiry_days if settings else DEFAULT_PLAN_EXPIRY_DAYS,
        percents=", ".join(str(p) for p in percents),
        email_enabled=state.settings.smtp_url is not None,
    )
