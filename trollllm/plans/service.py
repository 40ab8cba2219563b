"""Plans: the plan rows an admin edits, and a user's plan change with its credit grant (SPEC §5).

A plan is **paid** when it has API access (`api_access` true): only paid plans grant credits, and only
paid plans have a period (`planStartDate`, `planExpiresAt`). Every function runs in the caller's
transaction and records its audit entry there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.accounts.tables import User
from trollllm.audit.service import record_audit
from trollllm.billing.ledger import PLAN_GRANT, apply_adjustment
from trollllm.billing.tables import LedgerEntry
from trollllm.errors import BalanceLimitExceeded, Conflict, InvalidRequest, NotFound
from trollllm.money import Money
from trollllm.plans.calendar import add_one_month
from trollllm.plans.schemas import NewPlan, PlanFields, PlanView, validate_models, validate_windows
from trollllm.plans.tables import FREE_PLAN, Plan
from trollllm.plans.windows import dump_models, dump_windows
from trollllm.pricing.tables import LlmModel
from trollllm.state import AppState


def is_paid(plan: Plan) -> bool:
    """A plan is paid when it gives API access; the others (like `free`) grant nothing and never expire."""
    return plan.api_access


def plan_change_grant(old: Plan, new: Plan) -> Money:
    """Credits granted when a user moves from `old` to `new` (SPEC §5).

    Unpaid → paid grants the new plan's credits; paid → paid grants the difference of the two grants
    when positive (dev → pro: +$275; pro → dev and a renewal of the same plan: nothing); → unpaid grants
    nothing.
    """
    if not is_paid(new):
        return Money.ZERO
    if not is_paid(old):
        return Money(new.credit_grant_nanos)
    return Money(max(new.credit_grant_nanos - old.credit_grant_nanos, 0))


async def list_plans(session: AsyncSession) -> list[Plan]:
    """Every plan, by name."""
    return list(await session.scalars(select(Plan).order_by(Plan.name)))


async def find_plan(session: AsyncSession, name: str) -> Plan | None:
    """The plan called `name`, if any."""
    return await session.get(Plan, name)


async def create_plan(session: AsyncSession, state: AppState, body: NewPlan, *, actor: str) -> Plan:
    """Add a plan; 409 when the name is taken."""
    if await find_plan(session, body.name) is not None:
        raise Conflict(f"Plan {body.name!r} already exists", field="name")
    limits = await _limits_of(session, body)
    plan = Plan(name=body.name, created_at=state.clock.now())
    _assign(plan, body, limits)
    session.add(plan)
    try:
        await session.flush()
    except IntegrityError as exc:  # created concurrently
        raise Conflict(f"Plan {body.name!r} already exists", field="name") from exc
    await record_audit(
        session, state, actor=actor, action="plan.create", target=f"plan:{plan.name}", after=_snapshot(plan)
    )
    return plan


async def update_plan(
    session: AsyncSession, state: AppState, name: str, body: PlanFields, *, actor: str
) -> Plan:
    """Replace every field of a plan (its name stays). Users keep their current period's token quota
    (`totalTokens`) until their next plan change; RPM and API access apply to their next request.
    """
    limits = await _limits_of(session, body)
    plan = await session.get(Plan, name, with_for_update=True)
    if plan is None:
        raise NotFound("No such plan", field="name")
    before = _snapshot(plan)
    _assign(plan, body, limits)
    await session.flush()
    await record_audit(
        session,
        state,
        actor=actor,
        action="plan.update",
        target=f"plan:{name}",
        before=before,
        after=_snapshot(plan),
    )
    return plan


async def delete_plan(session: AsyncSession, state: AppState, name: str, *, actor: str) -> None:
    """Delete a plan no user is on; `free` (every user's fallback) can never be deleted (409)."""
    if name == FREE_PLAN:
        raise Conflict("The free plan cannot be deleted: expired plans fall back to it", field="name")
    plan = await session.get(Plan, name, with_for_update=True)
    if plan is None:
        raise NotFound("No such plan", field="name")
    users = await session.scalar(select(func.count()).select_from(User).where(User.plan == name))
    if users:
        raise Conflict(f"Plan {name!r} is in use by {users} user(s)", field="name", users=users)
    before = _snapshot(plan)
    await session.delete(plan)
    try:
        await session.flush()
    except IntegrityError as exc:  # a user moved onto it concurrently
        raise Conflict(f"Plan {name!r} is in use", field="name") from exc
    await record_audit(
        session, state, actor=actor, action="plan.delete", target=f"plan:{name}", before=before
    )


async def change_plan(
    session: AsyncSession, state: AppState, user: User, new_plan: Plan, actor: str
) -> LedgerEntry | None:
    """Move `user` (loaded, ideally locked, in `session`) to `new_plan`, exactly as SPEC §5 says.

    - unpaid → paid grants the plan's credits; paid → paid grants the positive difference of grants;
      the grant is a `plan_grant` ledger entry (returned; None when nothing is granted);
    - to a paid plan: `planStartDate` = now and `planExpiresAt` = now + 1 calendar month (Jan 31 → Feb
      28/29), also when the plan is the same one (a renewal, granting nothing);
    - to an unpaid plan (`free`): both dates null; credits are left as they are;
    - `totalTokens` = the new plan's monthly token limit (None for unlimited).
    """
    old_plan = await session.get(Plan, user.plan)
    if old_plan is None:  # the foreign key makes this impossible
        raise InvalidRequest(f"User {user.username!r} is on an unknown plan", field="plan")
    now = state.clock.now()
    grant = plan_change_grant(old_plan, new_plan)
    entry = None
    if grant:
        try:
            entry = await apply_adjustment(
                session,
                user_id=user.id,
                credits_delta=grant,
                ref_credits_delta=Money.ZERO,
                kind=PLAN_GRANT,
                reason=f"plan change {old_plan.name} -> {new_plan.name}",
                actor=actor,
                when=now,
            )
        except BalanceLimitExceeded as exc:  # the request named a plan, not an amount
            raise BalanceLimitExceeded(exc.message, field="plan") from exc
    user.plan = new_plan.name
    if is_paid(new_plan):
        user.plan_start_date = now
        user.plan_expires_at = add_one_month(now)
    else:
        user.plan_start_date = None
        user.plan_expires_at = None
    user.total_tokens = new_plan.monthly_token_limit
    await session.flush()
    return entry


async def _limits_of(session: AsyncSession, body: PlanFields) -> tuple[str | None, str | None]:
    """The plan row's `windows` and `models` text for `body`: 400 naming the field when invalid, or when a
    listed model does not exist."""
    windows = validate_windows(body.windows)
    models = validate_models(body.models)
    if models:
        known = set(await session.scalars(select(LlmModel.model_id).where(LlmModel.model_id.in_(models))))
        for index, model_id in enumerate(models):
            if model_id not in known:
                raise InvalidRequest(f"models.{index}: no model {model_id!r}", field=f"models.{index}")
    return dump_windows(windows), dump_models(models)


def _assign(plan: Plan, body: PlanFields, limits: tuple[str | None, str | None]) -> None:
    plan.api_access = body.apiAccess
    plan.rpm = body.rpm
    plan.credit_grant_nanos = body.creditGrantUsd.nanos
    plan.monthly_token_limit = body.monthlyTokenLimit
    plan.byok_rpm = body.byokRpm
    plan.windows, plan.models = limits


def _snapshot(plan: Plan) -> dict[str, Any]:
    return PlanView.of(plan).model_dump()
