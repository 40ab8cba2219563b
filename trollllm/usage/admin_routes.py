"""`GET /api/admin/metrics?period=1h|24h|7d|30d|all`: the system's requests, tokens, spend, errors and
latency, with the previous period's totals.

Computed by the database from the hourly rollups and the logs not yet rolled up
(`trollllm.usage.metrics`); equal to the request logs at every moment, and kept past their purge.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from trollllm.money import Money
from trollllm.state import get_state
from trollllm.usage.metrics import MetricsReport, Period, UsageSums, error_rate, read_metrics

router = APIRouter()


class ModelMetrics(BaseModel):
    """One model's requests in the period."""

    model: str
    requests: int
    errors: int
    inputTokens: int
    outputTokens: int
    cacheWriteTokens: int
    cacheHitTokens: int
    spendUsd: float

    @classmethod
    def of(cls, model: str, sums: UsageSums) -> ModelMetrics:
        """The view of one model's sums."""
        return cls(
            model=model,
            requests=sums.requests,
            errors=sums.errors,
            inputTokens=sums.input_tokens,
            outputTokens=sums.output_tokens,
            cacheWriteTokens=sums.cache_write_tokens,
            cacheHitTokens=sums.cache_hit_tokens,
            spendUsd=Money(sums.cost_nanos).to_json(),
        )


class UserMetrics(BaseModel):
    """One of the users who spent the most in the period (the owner, for Friend Key requests)."""

    username: str
    requests: int
    inputTokens: int
    outputTokens: int
    spendUsd: float


class SeriesPoint(BaseModel):
    """One bucket of the chart: requests from `start` to the next point's start."""

    start: datetime
    requests: int
    errors: int
    inputTokens: int
    outputTokens: int
    spendUsd: float


class MetricsSeries(BaseModel):
    """The chart: every bucket of the period in order, empty ones as zeros."""

    bucketSeconds: int
    points: list[SeriesPoint]


class ErrorTypeMetrics(BaseModel):
    """Failed requests of one error type and status in the period."""

    errorType: str = Field(description="`other` sums the types beyond the 20 most frequent")
    statusCode: int | None
    refused: bool = Field(description="refused by the gateway itself (never sent upstream, not charged)")
    requests: int


class PreviousPeriod(BaseModel):
    """The totals of the period just before (as many buckets, ending where this period starts)."""

    from_: datetime = Field(serialization_alias="from")
    to: datetime = Field(description="exclusive: the period's own `from`")
    requests: int
    failedRequests: int
    errorRate: float
    totalInputTokens: int
    totalOutputTokens: int
    spendUsd: float

    @classmethod
    def of(cls, start: datetime, end: datetime, sums: UsageSums) -> PreviousPeriod:
        """The view of the previous period's sums."""
        return cls(
            from_=start,
            to=end,
            requests=sums.requests,
            failedRequests=sums.errors,
            errorRate=error_rate(sums),
            totalInputTokens=sums.input_tokens,
            totalOutputTokens=sums.output_tokens,
            spendUsd=Money(sums.cost_nanos).to_json(),
        )


class MetricsView(BaseModel):
    """`GET /api/admin/metrics`."""

    period: str
    from_: datetime | None = Field(serialization_alias="from", description="null for `all`")
    to: datetime
    requests: int
    successfulRequests: int
    failedRequests: int
    errorRate: float = Field(description="failedRequests / requests, 0 without requests")
    errorsByType: list[ErrorTypeMetrics] = Field(
        description="the failed and refused requests by error type, most first (for `all`: the logs kept)"
    )
    totalInputTokens: int
    totalOutputTokens: int
    cacheWriteTokens: int
    cacheHitTokens: int
    spendUsd: float
    latencyP50Ms: int | None = Field(
        description="upper bound of the histogram bucket (≤ 4/3 of the true value)"
    )
    latencyP95Ms: int | None
    byModel: list[ModelMetrics]
    topUsers: list[UserMetrics]
    series: MetricsSeries
    previous: PreviousPeriod | None = Field(description="the period just before; null for `all`")

    @classmethod
    def of(cls, report: MetricsReport) -> MetricsView:
        """The JSON shape of a report: models by spend then requests, the top users by spend."""
        totals = report.totals
        previous = None
        if report.previous is not None and report.previous_start and report.window.start:
            previous = PreviousPeriod.of(report.previous_start, report.window.start, report.previous)
        return cls(
            period=report.window.period,
            from_=report.window.start,
            to=report.window.end,
            requests=totals.requests,
            successfulRequests=totals.requests - totals.errors,
            failedRequests=totals.errors,
            errorRate=report.error_rate,
            errorsByType=[
                ErrorTypeMetrics(
                    errorType=row.error_type,
                    statusCode=row.status_code,
                    refused=row.refused,
                    requests=row.requests,
                )
                for row in report.error_types
            ],
            totalInputTokens=totals.input_tokens,
            totalOutputTokens=totals.output_tokens,
            cacheWriteTokens=totals.cache_write_tokens,
            cacheHitTokens=totals.cache_hit_tokens,
            spendUsd=Money(totals.cost_nanos).to_json(),
            latencyP50Ms=report.latency_p50_ms,
            latencyP95Ms=report.latency_p95_ms,
            byModel=[ModelMetrics.of(model, sums) for model, sums in report.models_by_spend()],
            topUsers=[
                UserMetrics(
                    username=username,
                    requests=sums.requests,
                    inputTokens=sums.input_tokens,
                    outputTokens=sums.output_tokens,
                    spendUsd=Money(sums.cost_nanos).to_json(),
                )
                for username, sums in report.top_users
            ],
            series=MetricsSeries(
                bucketSeconds=report.window.bucket_s,
                points=[
                    SeriesPoint(
                        start=start,
                        requests=sums.requests,
                        errors=sums.errors,
                        inputTokens=sums.input_tokens,
                        outputTokens=sums.output_tokens,
                        spendUsd=Money(sums.cost_nanos).to_json(),
                    )
                    for start, sums in report.series
                ],
            ),
            previous=previous,
        )


@router.get("/metrics", response_model=MetricsView, response_model_by_alias=True)
async def system_metrics(
    request: Request,
    period: Annotated[
        Period,
        Query(description="`1h` (5-minute buckets), `24h` (hourly), `7d` (6-hourly), `30d`, `all` (daily)"),
    ] = "24h",
) -> MetricsView:
    """Requests, tokens, spend, error rate, latency, models, top users and a chart of one period, and the
    previous period's totals beside them."""
    state = get_state(request)
    async with state.sessions() as session:
        report = await read_metrics(session, period, state.clock.now())
    return MetricsView.of(report)
