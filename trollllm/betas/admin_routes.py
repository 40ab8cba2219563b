"""`GET/PUT /api/admin/anthropic-betas`: the refused values, the gateway's own rules, and what was forwarded.

Mounted by `trollllm.admin.router` behind the admin check. A change applies to the next request on every
instance (the `anthropic_betas` invalidation topic).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StrictStr

from trollllm.accounts.sessions import CurrentAdmin
from trollllm.betas import service
from trollllm.betas.policy import LONG_CONTEXT_PREFIX, PRICED_ELSEWHERE, TOPIC
from trollllm.db import transaction
from trollllm.state import AppState, get_state

router = APIRouter(tags=["admin: anthropic betas"])


class RefusedBetas(BaseModel):
    """The body of `PUT /api/admin/anthropic-betas`: every refused value (replaces the list)."""

    refused: list[StrictStr] = Field(
        description="Values refused with 400 (exact, or a prefix ending in `*`); every other is forwarded"
    )


class PriceRule(BaseModel):
    """A rule the gateway applies itself: values that change the price."""

    prefix: str
    rule: str


class ForwardedBeta(BaseModel):
    """A value this instance forwarded in the last 24 hours."""

    value: str
    count: int


class BetasView(BaseModel):
    """The whole `anthropic-beta` policy."""

    refused: list[str]
    priceRules: list[PriceRule]
    forwardedLast24h: list[ForwardedBeta] = Field(
        description="Counted in memory by the instance that answers (every instance: the Prometheus counter "
        "trollllm_anthropic_betas_total)"
    )


def _rules() -> list[PriceRule]:
    rules = [PriceRule(prefix=LONG_CONTEXT_PREFIX, rule="forwarded to models with a longContext tier only")]
    rules.extend(PriceRule(prefix=prefix, rule=f"refused: {why}") for prefix, why in PRICED_ELSEWHERE.items())
    return rules


def betas_view(state: AppState, refused: list[str]) -> BetasView:
    """The view of the policy with this list of refused values."""
    forwarded = [ForwardedBeta(value=c.value, count=c.count) for c in state.betas.tally.last_24h()]
    return BetasView(refused=refused, priceRules=_rules(), forwardedLast24h=forwarded)


@router.get("/anthropic-betas", response_model=BetasView)
async def get_betas(request: Request) -> BetasView:
    """The refused values, the gateway's price rules and the values forwarded in the last 24 hours."""
    state = get_state(request)
    async with state.sessions() as session:
        refused = await service.refused_values(session)
    return betas_view(state, refused)


@router.put("/anthropic-betas", response_model=BetasView)
async def put_betas(body: RefusedBetas, admin: CurrentAdmin, request: Request) -> BetasView:
    """Replace the refused values (400 naming `refused` for a malformed one); audited."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        refused = await service.replace_refused(session, state, admin.username, body.refused)
    await state.invalidation.publish(TOPIC)
    return betas_view(state, refused)
