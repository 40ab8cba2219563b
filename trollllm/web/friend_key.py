"""`/dashboard/friend-key`: generate, show, copy and rotate the Friend Key, its per-model limits (with the
smallest limit that can admit a request), and its activity, refused attempts included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from trollllm.crypto import mask_friend_key
from trollllm.errors import InvalidRequest, NotFound
from trollllm.friendkeys.resets import RESET_PERIODS
from trollllm.friendkeys.schemas import ModelLimitView, percentage
from trollllm.friendkeys.service import enabled_model_ids, load_friend_key
from trollllm.friendkeys.tables import FriendKeyModelLimit
from trollllm.money import INPUT_MARGIN_TOKENS, Money, hold_bound
from trollllm.plans.user_routes import current_account
from trollllm.pricing.catalog import CatalogModel
from trollllm.state import get_state
from trollllm.usage.history import PageParams, is_refusal, page_request_logs, parse_page_params
from trollllm.web.history import page_numbers
from trollllm.web.render import page
from trollllm.web.session import csrf_token, page_user

router = APIRouter(include_in_schema=False)

_ACTIVITY_PAGE = 10


def bar_colour(percent: float) -> str:
    """The usage bar's colour: green below 70 %, yellow from 70 to 90 %, red above 90 %."""
    if percent > 90:
        return "red"
    return "yellow" if percent >= 70 else "green"


def smallest_full_output_hold(model: CatalogModel) -> Money:
    """What the gate holds for the smallest request that leaves `max_tokens` to the model (its full output):
    the input margin alone and every output token, at the model's prices. A cap below it admits no such
    request; only a request asking for fewer output tokens can pass."""
    return hold_bound(model.prices, INPUT_MARGIN_TOKENS, model.max_output_tokens)


@dataclass(frozen=True, slots=True)
class LimitRow:
    """One model's line in the limits table."""

    model_id: str
    limit: FriendKeyModelLimit | None
    used: Money
    cap: Money
    share: float  # used / limit in %, uncapped (a cap lowered below its use reads over 100 %)
    colour: str
    smallest_hold: Money | None  # None for a model no longer enabled
    max_output_tokens: int
    period: str  # the cap's reset period (`none`, `daily`, `weekly`, `monthly`)
    next_reset: datetime | None

    @property
    def percent(self) -> float:
        """The bar's width: the share, at most 100."""
        return min(self.share, 100.0)

    @property
    def share_text(self) -> str:
        """The share as the page writes it: `0 %`, `35.5 %`, `0.35 %`, `120 %`."""
        return f"{self.share:.2f}".rstrip("0").rstrip(".") + " %"

    @property
    def below_smallest_hold(self) -> bool:
        """A limit set above zero but too small for one request at the model's full output."""
        return self.smallest_hold is not None and 0 < self.cap.nanos < self.smallest_hold.nanos


@router.get("/dashboard/friend-key")
async def friend_key_page(request: Request) -> Response:
    """The key (or a Generate button), the limits table of every enabled model, and recent activity."""
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    state = get_state(request)
    user, plan = await current_account(state, user)
    try:
        async with state.sessions() as session:
            found = await load_friend_key(session, user.id)
    except NotFound:
        found = None
    context: dict[str, Any] = {
        "user": user,
        "csrf": csrf_token(request),
        "current": "friend-key",
        "refused_for_plan": not plan.api_access,  # the gate answers free_tier_restricted to every request
    }
    if found is None:
        return page("friend_key.html", key=None, **context)
    limits = {row.model_id: row for row in found.limits}
    now = state.clock.now()
    models = {model.model_id: model for model in await state.catalog.enabled()}
    rows = []
    for model_id in sorted(await enabled_model_ids(state) | limits.keys()):
        limit = limits.get(model_id)
        model = models.get(model_id)
        view = ModelLimitView.of(limit, now, user.time_zone) if limit else None  # a due reset shows as done
        used = Money(view.used_nanos if view else 0)
        cap = Money(view.limit_nanos if view else 0)
        share = percentage(used, cap)
        rows.append(
            LimitRow(
                model_id=model_id,
                limit=limit,
                used=used,
                cap=cap,
                share=share,
                colour=bar_colour(share),
                smallest_hold=None if model is None else smallest_full_output_hold(model),
                max_output_tokens=0 if model is None else model.max_output_tokens,
                period=limit.reset_period if limit else "none",
                next_reset=view.nextResetAt if view else None,
            )
        )
    try:
        params = parse_page_params(request.query_params.get("page"), str(_ACTIVITY_PAGE), None, None)
    except InvalidRequest:
        params = PageParams(limit=_ACTIVITY_PAGE)
    async with state.sessions() as session:
        activity = await page_request_logs(session, params, user_id=user.id, friend_key_id=found.key.id)
    return page(
        "friend_key.html",
        key=found.key,
        masked=mask_friend_key(found.key.last4),
        can_reveal=found.key.key_encrypted is not None,
        rows=rows,
        activity=activity,
        activity_rows=[(row, is_refusal(row)) for row in activity.rows],
        page_numbers=page_numbers(activity.page, activity.total_pages),
        total_used=found.key.total_used_nanos,
        periods=RESET_PERIODS,
        expired=found.key.expires_at is not None and found.key.expires_at <= now,
        **context,
    )
