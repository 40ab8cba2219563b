"""The audit page's words for a snapshot's fields and values: readable, not raw JSON.

A nested object becomes one line per leaf (`long context › threshold tokens`), so a change shows only the
part that changed. Field names are split into words (`planExpiresAt` → `plan expires at`); amounts in USD
(`…Usd`, `credits`, `refCredits`, `…Price…`) read `$225.00` or, below a cent, every digit (`$0.0000175`);
instants read in the admin's time zone; yes / no for booleans, thousands separators for counts, a list as
its items.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_VALUE_CHARS = 120
_SEPARATOR = " › "
_CAMEL = re.compile(r"^[a-z]+(?:[A-Z][a-z0-9]*)+$")
_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_ACRONYMS = {
    "url": "URL", "usd": "USD", "id": "ID", "ids": "IDs", "api": "API", "mtok": "MTok", "kcalls": "K calls"
}  # fmt: skip
_MONEY_NAMES = frozenset({"credits", "refCredits"})
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$")
_CENT = Decimal("0.01")


def flatten(snapshot: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every leaf of a snapshot by its dotted path (`longContext.thresholdTokens`); an empty object is a
    leaf itself."""
    leaves: dict[str, Any] = {}
    for key, value in snapshot.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            leaves |= flatten(value, path + ".")
        else:
            leaves[path] = value
    return leaves


def _words(name: str) -> str:
    if not _CAMEL.match(name):
        return name  # a model id, a provider name: data, kept as it is
    words = _WORD_BREAK.sub(" ", name).lower().split(" ")
    return " ".join(_ACRONYMS.get(word, word) for word in words)


def field_label(path: str) -> str:
    """`planExpiresAt` → `plan expires at`; `longContext.inputPricePerMTok` → `long context › input price
    per M tok`."""
    return _SEPARATOR.join(_words(part) for part in path.split("."))


def _is_money(name: str) -> bool:
    return name.endswith("Usd") or name in _MONEY_NAMES or "Price" in name


def _money(value: float | int) -> str:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    sign, amount = ("-" if amount < 0 else ""), abs(amount)
    text = f"{amount:,.2f}" if amount == amount.quantize(_CENT) else f"{amount.normalize():f}"
    return f"{sign}${text}"


def _instant(text: str, zone: tzinfo) -> str | None:
    if not _INSTANT.match(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _item(name: str, value: Any, zone: tzinfo) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if _is_money(name):
            return _money(value)
        return f"{value:,}" if isinstance(value, int) else str(value)
    if isinstance(value, str):
        return _instant(value, zone) or (value if value else "(empty)")
    if isinstance(value, Mapping):
        if not value:
            return "none"
        return ", ".join(f"{field_label(key)} {_item(key, item, zone)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        if not value:
            return "none"
        joiner = "; " if any(isinstance(item, Mapping) for item in value) else ", "
        return joiner.join(_item(name, item, zone) for item in value)
    return str(value)


def value_text(path: str, value: Any, zone: tzinfo) -> str:
    """A value as the audit page writes it, at most `MAX_VALUE_CHARS` characters."""
    text = _item(path.rsplit(".", 1)[-1], value, zone)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"
