"""Request and response bodies of the plan admin endpoints (SPEC §5)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr, field_validator

from trollllm.billing.windows import WINDOW_SECONDS, WindowLimit
from trollllm.errors import InvalidRequest
from trollllm.fields import UsdAmount, parse_usd_json
from trollllm.money import Money
from trollllm.plans.tables import Plan
from trollllm.plans.windows import parse_models, parse_windows

PLAN_NAME_PATTERN = r"^[a-z0-9._-]{1,64}$"
MAX_RPM = 1_000_000
MAX_TOKEN_LIMIT = 10**15  # far inside BIGINT, far above any monthly quota

Rpm = Annotated[StrictInt, Field(ge=0, le=MAX_RPM)]


class PlanFields(BaseModel):
    """Everything of a plan but its name; every field is required (`monthlyTokenLimit` may be null)."""

    apiAccess: StrictBool = Field(description="true: a paid plan, the proxy serves platform keys")
    rpm: Rpm
    creditGrantUsd: UsdAmount = Field(description="credits granted on upgrade, USD ≥ 0")
    monthlyTokenLimit: Annotated[StrictInt, Field(ge=0, le=MAX_TOKEN_LIMIT)] | None = Field(
        description="tokens per month; null = unlimited"
    )
    byokRpm: Rpm
    windows: Any = Field(
        default=None,
        description='usage windows, rolling: `[{"window": "5h" | "24h" | "7d" | "30d", "usdLimit"?: USD > 0, '
        '"tokenLimit"?: tokens > 0}]`; null or absent = none',
        json_schema_extra={"type": "array", "nullable": True, "items": {"type": "object"}},
    )
    models: Any = Field(
        default=None,
        description="the model ids the plan may use; null or absent = every model",
        json_schema_extra={"type": "array", "nullable": True, "items": {"type": "string"}},
    )

    @field_validator("creditGrantUsd")
    @classmethod
    def _grant_not_negative(cls, value: Money) -> Money:
        if value.nanos < 0:
            raise ValueError("must be ≥ 0")
        return value


class NewPlan(PlanFields):
    """`POST /api/admin/plans`."""

    name: StrictStr = Field(pattern=PLAN_NAME_PATTERN, description="1–64 of [a-z0-9._-]")


class PlanUpdate(PlanFields):
    """`PUT /api/admin/plans/{name}`: replaces every field; a `name` other than the path's is refused."""

    name: StrictStr | None = Field(default=None, description="optional; must equal the path's name")


class WindowView(BaseModel):
    """One usage window of a plan."""

    window: str
    usdLimit: float | None
    tokenLimit: int | None

    @classmethod
    def of(cls, window: WindowLimit) -> WindowView:
        """The view of a window."""
        usd = window.usd_limit_nanos
        return cls(
            window=window.name,
            usdLimit=None if usd is None else Money(usd).to_json(),
            tokenLimit=window.token_limit,
        )


class PlanView(BaseModel):
    """A plan row as the admin API shows it."""

    name: str
    apiAccess: bool
    rpm: int
    creditGrantUsd: float
    monthlyTokenLimit: int | None
    byokRpm: int
    windows: list[WindowView]
    models: list[str] | None

    @classmethod
    def of(cls, plan: Plan) -> PlanView:
        """The view of a plan row."""
        return cls(
            name=plan.name,
            apiAccess=plan.api_access,
            rpm=plan.rpm,
            creditGrantUsd=Money(plan.credit_grant_nanos).to_json(),
            monthlyTokenLimit=plan.monthly_token_limit,
            byokRpm=plan.byok_rpm,
            windows=[WindowView.of(window) for window in parse_windows(plan.windows)],
            models=None if plan.models is None else sorted(parse_models(plan.models) or ()),
        )


class PlanList(BaseModel):
    """`GET /api/admin/plans`."""

    plans: list[PlanView]


MAX_WINDOW_USD = Money.from_usd(1_000_000)
"""The highest `usdLimit` of a usage window: above it the value is a typo, not a limit."""


def _positive_tokens(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{field} must be a whole number of tokens", field=field)
    if not 0 < value <= MAX_TOKEN_LIMIT:
        raise InvalidRequest(f"{field} must be between 1 and {MAX_TOKEN_LIMIT}", field=field)
    return value


def _positive_usd(value: object, field: str) -> int:
    try:
        amount = parse_usd_json(value)
    except ValueError as exc:
        raise InvalidRequest(f"{field} {exc}", field=field) from exc
    if not Money.ZERO < amount <= MAX_WINDOW_USD:
        raise InvalidRequest(
            f"{field} must be above 0 and at most {MAX_WINDOW_USD.to_json():.0f} USD", field=field
        )
    return amount.nanos


def validate_windows(value: object) -> tuple[WindowLimit, ...]:
    """A plan's `windows` as sent by an admin: a list (or null) of `{window, usdLimit?, tokenLimit?}`, each
    window named once with at least one limit; anything else is a 400 naming the field."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRequest("windows must be a list (or null)", field="windows")
    windows: list[WindowLimit] = []
    for index, item in enumerate(value):
        where = f"windows.{index}"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object", field=where)
        unknown = set(item) - {"window", "usdLimit", "tokenLimit"}
        if unknown:
            name = sorted(unknown)[0]
            raise InvalidRequest(f"{where}.{name} is not a window field", field=f"{where}.{name}")
        name = item.get("window")
        if not isinstance(name, str) or name not in WINDOW_SECONDS:
            raise InvalidRequest(
                f"{where}.window must be one of {', '.join(WINDOW_SECONDS)}", field=f"{where}.window"
            )
        if any(window.name == name for window in windows):
            raise InvalidRequest(f"{where}.window: {name} is listed twice", field=f"{where}.window")
        usd = item.get("usdLimit")
        tokens = item.get("tokenLimit")
        if usd is None and tokens is None:
            raise InvalidRequest(
                f"{where}.usdLimit or {where}.tokenLimit is required", field=f"{where}.usdLimit"
            )
        windows.append(
            WindowLimit(
                name=name,
                usd_limit_nanos=None if usd is None else _positive_usd(usd, f"{where}.usdLimit"),
                token_limit=None if tokens is None else _positive_tokens(tokens, f"{where}.tokenLimit"),
            )
        )
    return tuple(windows)


def validate_models(value: object) -> list[str] | None:
    """A plan's `models`: null (every model) or a list of model ids (their existence is checked by the
    service)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidRequest("models must be a list of model ids (or null for every model)", field="models")
    for index, model_id in enumerate(value):
        if not isinstance(model_id, str) or not 0 < len(model_id) <= 128:
            raise InvalidRequest(f"models.{index} must be a model id", field=f"models.{index}")
    return list(value)
