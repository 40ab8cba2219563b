"""`/users/{username}`: one user's figures, keys (masked), usage by model, ledger and latest requests
(`admin.user_activity`), and the three admin writes on a user, each a plain form.

- plan: the select names the credits each plan would grant this user (SPEC §5: free → paid grants the
  plan's credits, paid → paid the positive difference), and the change waits for a confirmation that
  repeats the grant and the new expiry date;
- credits: amount in USD (negative deducts, never below zero), which balance, and a reason;
- activate / deactivate (the last active admin cannot be deactivated); Deactivate asks in a dialog first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import APIRouter, Request
from pydantic import ValidationError
from sqlalchemy import select
from starlette.responses import Response

from trollllm.accounts.tables import User
from trollllm.admin.user_activity import user_activity
from trollllm.admin.user_schemas import CreditsAdjustment, UserUpdate
from trollllm.admin.user_service import adjust_credits, locked_user, update_user
from trollllm.db import transaction
from trollllm.errors import GatewayError
from trollllm.money import Money, MoneyParseError
from trollllm.plans.calendar import add_one_month
from trollllm.plans.service import is_paid, list_plans, plan_change_grant
from trollllm.plans.tables import Plan
from trollllm.state import get_state
from trollllm.web.admin.access import (
    REQUIRED,
    admin_form,
    admin_page,
    admin_view,
    done,
    field_errors,
    service_error,
)

router = APIRouter(include_in_schema=False)

CREDIT_HINTS = {"balance": "Choose credits or refCredits", "reason": "1 to 500 characters"}


@dataclass(frozen=True, slots=True)
class PlanChoice:
    """A plan in the select, with what moving this user onto it would grant and why."""

    plan: Plan
    grant: Money
    rule: str


def plan_choices(current: Plan, plans: list[Plan]) -> list[PlanChoice]:
    """Every plan with its grant for a user now on `current` (the SPEC §5 rule named in words)."""
    choices = []
    for plan in plans:
        grant = plan_change_grant(current, plan)
        if not is_paid(plan):
            rule = "an unpaid plan grants nothing; the plan dates are cleared, credits stay"
        elif not is_paid(current):
            rule = f"{current.name} → {plan.name} grants the plan's credits"
        elif plan.name == current.name:
            rule = "a renewal grants nothing and starts a new month"
        else:
            rule = f"{current.name} → {plan.name} grants the difference when positive"
        choices.append(PlanChoice(plan, grant, rule))
    return choices


async def _render(
    request: Request, admin: User, username: str, status_code: int = 200, **context: object
) -> Response:
    state = get_state(request)
    async with state.sessions() as session:
        user = await session.scalar(select(User).where(User.username == username))
        plans = await list_plans(session)
        activity = await user_activity(session, user, state.clock.now()) if user is not None else None
    if user is None:
        return admin_view(request, "not_found.html", admin, "users", 404)
    current = next(plan for plan in plans if plan.name == user.plan)
    return admin_view(
        request,
        "admin/user.html",
        admin,
        "users",
        status_code,
        target=user,
        activity=activity,
        choices=plan_choices(current, plans),
        new_expiry=add_one_month(state.clock.now()),
        errors=context.pop("errors", {}),
        credit_form=context.pop("credit_form", {"balance": "credits"}),
        **context,
    )


@router.get("/users/{username}")
async def user_page(request: Request, username: str) -> Response:
    """The user's figures with the plan, credits and activity forms."""
    admin = await admin_page(request)
    if isinstance(admin, Response):
        return admin
    return await _render(request, admin, username)


@router.post("/users/{username}/plan")
async def change_plan(request: Request, username: str) -> Response:
    """First post: the confirmation with the grant; with `confirm=yes`: the change (SPEC §5)."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    admin, form = posted
    name = form.get("plan", "")
    state = get_state(request)
    async with state.sessions() as session:
        plans = {plan.name: plan for plan in await list_plans(session)}
    if name not in plans:
        return await _render(request, admin, username, 400, errors={"plan": "Choose one of the plans"})
    if form.get("confirm") != "yes":
        return await _render(request, admin, username, review=plans[name])
    try:
        async with transaction(state.sessions) as session:
            user = await locked_user(session, username)
            grant = plan_change_grant(plans[user.plan], plans[name])
            await update_user(session, state, username, UserUpdate(plan=name), actor=admin.username)
    except GatewayError as error:
        return await _render(request, admin, username, error.status_code, errors=service_error(error, "plan"))
    granted = f"granted {grant.format_balance()} in credits" if grant else "no credits granted"
    return done(f"/users/{username}", f"{username} is now on {name}: {granted}")


def _amount(text: str) -> Money | str:
    """The amount in USD, or why it is not one."""
    if not text.strip():
        return REQUIRED
    try:
        amount = Money.from_usd(text.strip())
    except MoneyParseError:
        return "An amount in USD, e.g. 25 or -10.50 (at most 9 decimals)"
    return amount if amount else "Must not be zero"


@router.post("/users/{username}/credits")
async def credits(request: Request, username: str) -> Response:
    """Grant (positive) or deduct (negative) one balance, with a reason; one ledger entry."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    admin, form = posted
    typed = {name: form.get(name, "") for name in ("amountUsd", "balance", "reason")}
    errors: dict[str, str] = {}
    amount = _amount(typed["amountUsd"])
    if isinstance(amount, str):
        errors["amountUsd"] = amount
    try:
        body = CreditsAdjustment.model_validate(
            {"amountUsd": 1, "balance": typed["balance"], "reason": typed["reason"]}
        )
    except ValidationError as invalid:
        errors |= field_errors(invalid, CREDIT_HINTS, form)
    if errors or isinstance(amount, str):
        return await _render(request, admin, username, 400, errors=errors, credit_form=typed)
    body = body.model_copy(update={"amountUsd": amount})
    state = get_state(request)
    try:
        await adjust_credits(state, username, body, actor=admin.username)
    except GatewayError as error:
        return await _render(
            request,
            admin,
            username,
            error.status_code,
            errors=service_error(error, "amountUsd"),
            credit_form=typed,
        )
    verb = "Granted" if amount.nanos > 0 else "Deducted"
    magnitude = Money(abs(amount.nanos)).format_balance()
    return done(
        f"/users/{username}", f"{verb} {magnitude} {'to' if amount.nanos > 0 else 'from'} {body.balance}"
    )


@router.post("/users/{username}/active")
async def set_active(request: Request, username: str) -> Response:
    """Activate (`active=yes`) or deactivate (`active=no`): a deactivated user's sessions and keys stop."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    admin, form = posted
    wanted: Mapping[str, bool] = {"yes": True, "no": False}
    if form.get("active") not in wanted:
        return await _render(
            request, admin, username, 400, errors={"isActive": "Choose activate or deactivate"}
        )
    active = wanted[form["active"]]
    state = get_state(request)
    try:
        async with transaction(state.sessions) as session:
            await update_user(session, state, username, UserUpdate(isActive=active), actor=admin.username)
    except GatewayError as error:
        return await _render(
            request, admin, username, error.status_code, errors=service_error(error, "isActive")
        )
    return done(f"/users/{username}", f"{username} is {'active' if active else 'deactivated'}")
