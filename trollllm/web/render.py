"""The one Jinja2 environment of the pages, its filters, and the static-asset version stamp."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup, escape
from starlette.responses import HTMLResponse

from trollllm.accounts.timezones import DEFAULT_TIME_ZONE, zone_of
from trollllm.money import Money

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"


def usd_cost(nanos: int) -> str:
    """A request's cost: `$X.XXXXXX`, never `$0.000000` when it is not zero (SPEC §4)."""
    return Money(nanos).format_cost()


def usd_balance(nanos: int) -> str:
    """A balance, limit or usage: 2 to 6 decimals (`$225.00`, `$7.654321`), never more than it is."""
    return Money(nanos).format_balance()


def usd_spend(nanos: int) -> str:
    """Spend (usage, totals, chart values): 2 to 6 decimals, never less than was charged."""
    return Money(nanos).format_spend()


def usd_exact(nanos: int) -> str:
    """The exact amount for a `title` (hover): dollars to the nano-dollar, `$0.000017500`."""
    return Money(nanos).format_exact()


_COUNT_UNITS = (("B", 10**9), ("M", 10**6), ("K", 10**3))


def count_short(count: int) -> str:
    """A token or request count in at most 4 characters and a unit, truncated (never rounded up).

    Below 1,000 the number itself (`999`); from each unit (K = 10³, M = 10⁶, B = 10⁹) one decimal while
    under 100 of it (`1,000` → `1.0K`, `1,500` → `1.5K`, `99,999` → `99.9K`), whole units from 100
    (`250,000` → `250K`, `999,999` → `999K`, `1,500,000` → `1.5M`). Truncating keeps `999,999` from
    showing as `1000K` and never shows more than was used; the exact number goes in a `title`.
    """
    if count < 0:
        return "-" + count_short(-count)
    for unit, size in _COUNT_UNITS:
        if count >= size:
            if count < 100 * size:
                tenths = count * 10 // size
                return f"{tenths // 10}.{tenths % 10}{unit}"
            return f"{count // size:,}{unit}"
    return str(count)


def count_exact(count: int) -> str:
    """A count with thousands separators (`1,500,000`), for tables and the `title` of a short count."""
    return f"{count:,}"


def usd_number(nanos: int) -> str:
    """An amount as a plain decimal for a form field: `2.5`, `0`, `0.000001` (no `$`, no trailing zeros)."""
    return format(Money(nanos).to_decimal().normalize(), "f")


_BREAK_AFTER = "/-.:"


def breakable(name: str) -> Markup:
    """A long name (a model ID such as `anthropic/claude-sonnet-4-5-20250929`) that may break after `/`,
    `-`, `.` and `:` (a `<wbr>` each), so a table column wraps it between its parts, not mid-word (an error
    type such as `model_not_found` stays whole)."""
    text = str(escape(name))
    for mark in _BREAK_AFTER:
        text = text.replace(mark, mark + "<wbr>")
    return Markup(text)  # noqa: S704 -- escaped above; only <wbr> added


def _day(moment: date | None) -> str:
    return moment.strftime("%Y-%m-%d") if moment else ""


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def zone_name(context: Context) -> str:
    """The signed-in user's time zone (SPEC §7), UTC for anonymous pages."""
    user = context.get("user")
    return getattr(user, "time_zone", None) or DEFAULT_TIME_ZONE


@pass_context
def _when(context: Context, moment: datetime | None) -> str:
    """An instant as `YYYY-MM-DD HH:mm:ss` in the user's time zone (the zone is labelled by the page)."""
    if moment is None:
        return ""
    return moment.astimezone(zone_of(zone_name(context))).strftime("%Y-%m-%d %H:%M:%S")


@pass_context
def _local_day(context: Context, moment: datetime | None) -> str:
    """An instant's calendar day in the user's time zone: `YYYY-MM-DD`."""
    if moment is None:
        return ""
    return moment.astimezone(zone_of(zone_name(context))).strftime("%Y-%m-%d")


_environment = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.globals["zone_name"] = pass_context(zone_name)
_environment.filters.update(
    usd_cost=usd_cost,
    usd_balance=usd_balance,
    usd_spend=usd_spend,
    usd_exact=usd_exact,
    when=_when,
    local_day=_local_day,
    day=_day,
    iso=_iso,
    count_short=count_short,
    count_exact=count_exact,
    usd_number=usd_number,
    breakable=breakable,
)


def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render `template` with `context` as an HTML response that no cache keeps (pages show balances)."""
    html = _environment.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers={"cache-control": "no-store"})
