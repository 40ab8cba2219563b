"""`/dashboard/friend-key`: generate, copy and rotate the Friend Key, its per-model limits, its activity."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from trollllm.errors import InvalidRequest, NotFound
from trollllm.friendkeys.resets import RESET_PERIODS
from trollllm.friendkeys.schemas import ModelLimitView, percentage
from trollllm.friendkeys.service import enabled_model_ids, load_friend_key
from trollllm.money import Money
from trollllm.state import get_state
from trollllm.usage.history import PageParams, page_request_logs, parse_page_params
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


@router.get("/dashboard/friend-key")
async def friend_key_page(request: Request) -> Response:
    """The key (or a Generate button), the limits table of every enabled model, and recent activity."""
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    state = get_state(request)
    try:
        async with state.sessions() as session:
            found = await load_friend_key(session, user.id)
    except NotFound:
        found = None
    context: dict[str, Any] = {"user": user, "csrf": csrf_token(request), "current": "friend-key"}
    if found is None:
        return page("friend_key.html", key=None, **context)
    limits = {row.model_id: row for row in found.limits}
    now = state.clock.now()
    rows = []
    for model_id in sorted(await enabled_model_ids(state) | limits.keys()):
        limit = limits.get(model_id)
        view = ModelLimitView.of(limit, now, user.time_zone) if limit else None  # a due reset shows as done
        used = Money.from_usd(view.usedUsd) if view else Money.ZERO
        cap = Money(limit.limit_nanos if limit else 0)
        share = percentage(used, cap)
        rows.append(
            {
                "model_id": model_id,
                "limit": limit,
                "used": used,
                "cap": cap,
                "percent": min(share, 100.0),
                "colour": bar_colour(share),
                "period": limit.reset_period if limit else "none",
                "next_reset": view.nextResetAt if view else None,
            }
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
        rows=rows,
        activity=activity,
        page_numbers=page_numbers(activity.page, activity.total_pages),
        total_used=found.key.total_used_nanos,
        periods=RESET_PERIODS,
        expired=found.key.expires_at is not None and found.key.expires_at <= now,
        **context,
    )
