"""`/dashboard/subscription` (plans side by side), `/dashboard/settings/api-keys` (own provider keys) and
the time zone form (`POST /dashboard/settings/time-zone`, the page twin of `PUT /api/user/settings`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from trollllm.accounts.tables import User
from trollllm.accounts.timezones import known_zone
from trollllm.byok.service import providers, saved_keys
from trollllm.db import transaction
from trollllm.plans.tables import Plan
from trollllm.plans.user_routes import current_account, plan_features
from trollllm.state import get_state
from trollllm.web.render import page
from trollllm.web.session import csrf_token, form_user, page_user, read_form

router = APIRouter(include_in_schema=False)


@router.get("/dashboard/subscription")
async def subscription(request: Request) -> Response:
    """Every plan side by side: credits granted, monthly tokens, RPM, features; the user's own highlighted."""
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    state = get_state(request)
    user, current_plan = await current_account(state, user)
    async with state.sessions() as session:
        plans = list((await session.scalars(select(Plan).order_by(Plan.credit_grant_nanos, Plan.name))).all())
    return page(
        "subscription.html",
        user=user,
        csrf=csrf_token(request),
        current="subscription",
        plans=[(plan, plan_features(plan)) for plan in plans],
        current_plan=current_plan.name,
    )


@router.get("/dashboard/settings/api-keys")
async def provider_keys(request: Request) -> Response:
    """The user's own provider keys: add one per provider, last 4, added date and status, delete (the
    live actions call `/api/user/provider-keys`)."""
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    async with get_state(request).sessions() as session:
        by_provider = {key.provider: key for key in await saved_keys(session, user.id)}
        rows = await providers(session)  # every provider row: adding one is data, and it shows here
    return page(
        "api_keys.html",
        user=user,
        csrf=csrf_token(request),
        current="api-keys",
        providers=[(row.name, row.display_name, by_provider.get(row.name)) for row in rows],
    )


@router.post("/dashboard/settings/time-zone")
async def set_time_zone(request: Request) -> Response:
    """Save the user's time zone from a page form and go back to the page it came from."""
    form = await read_form(request)
    user = await form_user(request, form)  # checks the form's CSRF field
    if user is None:
        return RedirectResponse("/login", status_code=303)
    back = form.get("back", "")
    back = back if back.startswith("/dashboard") and "//" not in back else "/dashboard"
    zone = form.get("timeZone", "").strip()
    if known_zone(zone):
        async with transaction(get_state(request).sessions) as session:
            row = await session.get_one(User, user.id)
            row.time_zone = zone
    return RedirectResponse(back, status_code=303)
