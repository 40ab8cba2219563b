"""Bodies of the alert endpoints: `PUT /api/user/alerts` parsed by hand (each refusal a 400 naming its
field, no lenient coercion: `"5"`, `true`, `NaN` are refused) and the views."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, Field

from trollllm.errors import InvalidRequest
from trollllm.money import Money, MoneyParseError

DEFAULT_USAGE_PERCENTS: Final = (80, 100)
DEFAULT_PLAN_EXPIRY_DAYS: Final = 7
MAX_LOW_BALANCE_USD: Final = 1_000_000
MAX_PLAN_EXPIRY_DAYS: Final = 365
MAX_USAGE_PERCENTS: Final = 10
_EMAIL = re.compile(r"[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"'.]+")


class _Keep:
    """A field left out of the body: its value stays."""


KEEP: Final = _Keep()

ALERTS_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "fields left out are kept; null turns a channel or an alert off",
    "properties": {
        "email": {"type": ["string", "null"], "description": "alert emails go here (needs SMTP)"},
        "webhookUrl": {
            "type": ["string", "null"],
            "description": "an https URL on a public address; a new URL answers its signing secret once",
        },
        "lowBalanceUsd": {
            "type": ["number", "null"],
            "exclusiveMinimum": 0,
            "maximum": MAX_LOW_BALANCE_USD,
            "description": "alert when credits + refCredits fall below this",
        },
        "planExpiryDays": {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": MAX_PLAN_EXPIRY_DAYS,
            "description": f"days before the plan expires to alert (default {DEFAULT_PLAN_EXPIRY_DAYS})",
        },
        "usagePercents": {
            "type": "array",
            "maxItems": MAX_USAGE_PERCENTS,
            "items": {"type": "integer", "minimum": 1, "maximum": 100},
            "description": "of the monthly tokens, each usage window, each Friend Key model cap (default "
            "[80, 100])",
        },
    },
}


@dataclass(frozen=True, slots=True)
class AlertsUpdate:
    """A validated `PUT /api/user/alerts` (KEEP: the field was left out)."""

    email: str | _Keep | None = KEEP
    webhook_url: str | _Keep | None = KEEP
    low_balance: Money | _Keep | None = KEEP
    plan_expiry_days: int | _Keep | None = KEEP
    usage_percents: tuple[int, ...] | _Keep = field(default=KEEP)


def parse_alerts_update(payload: object) -> AlertsUpdate:
    """Validate the body (the webhook URL's syntax only: its address is checked by the caller)."""
    if not isinstance(payload, dict):
        raise InvalidRequest("The body must be a JSON object", field="body")
    for name in payload:
        if name not in ALERTS_BODY_SCHEMA["properties"]:
            raise InvalidRequest(f"{str(name)[:64]}: unknown field", field=str(name)[:64])
    values: dict[str, Any] = {}
    if "email" in payload:
        values["email"] = _email(payload["email"])
    if "webhookUrl" in payload:
        url = payload["webhookUrl"]
        if url is not None and not isinstance(url, str):
            raise InvalidRequest("webhookUrl must be a URL string or null", field="webhookUrl")
        values["webhook_url"] = url
    if "lowBalanceUsd" in payload:
        values["low_balance"] = _low_balance(payload["lowBalanceUsd"])
    if "planExpiryDays" in payload:
        values["plan_expiry_days"] = _expiry_days(payload["planExpiryDays"])
    if "usagePercents" in payload:
        values["usage_percents"] = _percents(payload["usagePercents"])
    return AlertsUpdate(**values)


def _email(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest("email must be an email address or null", field="email")
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise InvalidRequest("email is not an email address", field="email")
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _low_balance(value: object) -> Money | None:
    path = "lowBalanceUsd"
    if value is None:
        return None
    if not _is_number(value):
        raise InvalidRequest(f"{path} must be a number of USD or null", field=path)
    assert isinstance(value, int | float)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequest(f"{path} must be a finite number", field=path)
    if value <= 0:
        raise InvalidRequest(f"{path} must be greater than 0 (null turns the alert off)", field=path)
    if value > MAX_LOW_BALANCE_USD:
        raise InvalidRequest(f"{path} must be at most {MAX_LOW_BALANCE_USD}", field=path)
    try:
        return Money.from_usd(value)
    except MoneyParseError as exc:
        raise InvalidRequest(f"{path}: {exc}", field=path) from exc


def _expiry_days(value: object) -> int | None:
    path = "planExpiryDays"
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(f"{path} must be a whole number of days or null", field=path)
    if not 1 <= value <= MAX_PLAN_EXPIRY_DAYS:
        raise InvalidRequest(f"{path} must be from 1 to {MAX_PLAN_EXPIRY_DAYS}", field=path)
    return value


def _percents(value: object) -> tuple[int, ...]:
    path = "usagePercents"
    if not isinstance(value, list):
        raise InvalidRequest(f"{path} must be a list of whole percentages, e.g. [80, 100]", field=path)
    if len(value) > MAX_USAGE_PERCENTS:
        raise InvalidRequest(f"{path} has more than {MAX_USAGE_PERCENTS} values", field=path)
    percents: set[int] = set()
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        if isinstance(item, float) and item.is_integer():
            item = int(item)
        if not isinstance(item, int) or isinstance(item, bool):
            raise InvalidRequest(f"{where} must be a whole percentage", field=where)
        if not 1 <= item <= 100:
            raise InvalidRequest(f"{where} must be from 1 to 100", field=where)
        percents.add(item)
    return tuple(sorted(percents))


class AlertSettingsView(BaseModel):
    """`GET/PUT /api/user/alerts`."""

    email: str | None
    webhookUrl: str | None
    webhookSecret: str | None = Field(
        default=None,
        description="the webhook signing secret: only in the answer that set a new webhookUrl",
    )
    lowBalanceUsd: float | None
    planExpiryDays: int | None
    usagePercents: list[int]
    emailEnabled: bool = Field(description="false while the gateway has no SMTP server (TROLLLLM_SMTP_URL)")


class NotificationView(BaseModel):
    """One alert in the dashboard's list."""

    id: int
    type: str
    message: str
    data: dict[str, Any]
    createdAt: datetime


class NotificationsView(BaseModel):
    """`GET /api/user/notifications`: the newest first."""

    notifications: list[NotificationView]
