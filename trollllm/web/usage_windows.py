"""The dashboard's usage windows card: each window of the user's plan as a bar, with when it frees up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from trollllm.money import Money
from trollllm.plans.tables import Plan
from trollllm.plans.windows import parse_windows, window_report
from trollllm.state import AppState
from trollllm.web.friend_key import bar_colour


@dataclass(frozen=True, slots=True)
class WindowBar:
    """One window as the card shows it."""

    name: str
    figures: list[str]  # "$0.40 / $1.00", "12,000 / 50,000 tokens"
    percent: float  # the fuller of its limits, capped at 100 for the bar
    colour: str
    resets_at: datetime | None


def _share(used: float, limit: float) -> float:
    return 100.0 if limit <= 0 else round(used * 100 / limit, 2)


async def window_bars(state: AppState, user_id: int, plan: Plan, now: datetime) -> list[WindowBar]:
    """The bars of the plan's windows (none when it has none); used = settled plus in flight."""
    bars = []
    for view in await window_report(state.db, user_id, parse_windows(plan.windows), now):
        figures, shares = [], []
        if view.usd_limit_nanos is not None:
            used, limit = Money(view.usd_used_nanos), Money(view.usd_limit_nanos)
            figures.append(f"{used.format_balance()} / {limit.format_balance()}")
            shares.append(_share(used.nanos, limit.nanos))
        if view.tokenLimit is not None:
            figures.append(f"{view.tokensUsed:,} / {view.tokenLimit:,} tokens")
            shares.append(_share(view.tokensUsed, view.tokenLimit))
        share = max(shares, default=0.0)
        bars.append(WindowBar(view.window, figures, min(share, 100.0), bar_colour(share), view.resetsAt))
    return bars
