"""Request and response bodies of the plan admin endpoints (SPEC §5)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr, field_validator

from trollllm.fields import UsdAmount
from trollllm.money import Money
from trollllm.plans.tables import Plan

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


class PlanView(BaseModel):
    """A plan row as the admin API shows it."""

    name: str
    apiAccess: bool
    rpm: int
    creditGrantUsd: float
    monthlyTokenLimit: int | None
    byokRpm: int

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
        )


class PlanList(BaseModel):
    """`GET /api/admin/plans`."""

    plans: list[PlanView]
