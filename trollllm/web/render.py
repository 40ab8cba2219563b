"""The one Jinja2 environment of the pages, its filters, and the static-asset version stamp."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from trollllm.money import Money

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"


def usd_cost(nanos: int) -> str:
    """A request's cost: `$X.XXXXXX`, never `$0.000000` when it is not zero (SPEC §4)."""
    return Money(nanos).format_cost()


def usd_balance(nanos: int) -> str:
    """A balance, limit or usage: 2 to 6 decimals (`$225.00`, `$7.654321`), never more than it is."""
    return Money(nanos).format_balance()


def usd_exact(nanos: int) -> str:
    """The exact amount for a `title` (hover): dollars to the nano-dollar, `$0.000017500`."""
    return Money(nanos).format_exact()


def _day(moment: date | None) -> str:
    return moment.strftime("%Y-%m-%d") if moment else ""


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


_environment = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters.update(
    usd_cost=usd_cost, usd_balance=usd_balance, usd_exact=usd_exact, day=_day, iso=_iso
)


def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render `template` with `context` as an HTML response that no cache keeps (pages show balances)."""
    html = _environment.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers={"cache-control": "no-store"})
