"""Admin endpoints of plans: `GET/POST /api/admin/plans`, `PUT/DELETE /api/admin/plans/{name}`.

Mounted by `trollllm.admin.router` behind the admin check.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from trollllm.accounts.sessions import CurrentAdmin
from trollllm.db import transaction
from trollllm.errors import InvalidRequest
from trollllm.plans import service
from trollllm.plans.schemas import NewPlan, PlanList, PlanUpdate, PlanView
from trollllm.state import get_state

router = APIRouter()


@router.get("/plans", response_model=PlanList)
async def list_plans(request: Request) -> PlanList:
    """Every plan row, by name."""
    async with get_state(request).sessions() as session:
        plans = await service.list_plans(session)
    return PlanList(plans=[PlanView.of(plan) for plan in plans])


@router.post("/plans", status_code=201, response_model=PlanView)
async def create_plan(body: NewPlan, request: Request, admin: CurrentAdmin) -> PlanView:
    """Add a plan (409 when the name is taken)."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        plan = await service.create_plan(session, state, body, actor=admin.username)
    return PlanView.of(plan)


@router.put("/plans/{name}", response_model=PlanView)
async def update_plan(name: str, body: PlanUpdate, request: Request, admin: CurrentAdmin) -> PlanView:
    """Replace a plan's fields; renaming is not supported (a `name` other than the path's is a 400)."""
    if body.name is not None and body.name != name:
        raise InvalidRequest("A plan cannot be renamed; create a new plan instead", field="name")
    state = get_state(request)
    async with transaction(state.sessions) as session:
        plan = await service.update_plan(session, state, name, body, actor=admin.username)
    return PlanView.of(plan)


@router.delete("/plans/{name}", status_code=204)
async def delete_plan(name: str, request: Request, admin: CurrentAdmin) -> Response:
    """Delete a plan no user is on (409 if in use, and always for `free`)."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        await service.delete_plan(session, state, name, actor=admin.username)
    return Response(status_code=204)
