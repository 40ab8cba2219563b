"""`/admin`: the system's input and output tokens, requests, spend and error rate for a period (1h, 24h,
7d, 30d, All as links, the selected one marked), each beside the previous period's, a server-side SVG
chart of requests and spend (dated ticks past a day) with a table fallback, the top models and top users.

The figures come from the metrics service (`usage.metrics.read_metrics`, rollups plus the logs not yet rolled
up), rendered on the server: the page reads the very report `GET /api/admin/metrics` answers.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from trollllm.state import AppState, get_state
from trollllm.usage.metrics import MetricsReport, read_metrics
from trollllm.web.admin.access import admin_page, admin_view
from trollllm.web.admin.metrics_view import DEFAULT_PERIOD, PERIODS, overview_of, series_chart
from trollllm.web.usage_chart import NARROW

router = APIRouter(include_in_schema=False)


async def period_report(state: AppState, period: str) -> MetricsReport:
    """The report `GET /api/admin/metrics?period=` answers, from the same service call as the API."""
    async with state.sessions() as session:
        return await read_metrics(session, period, state.clock.now())


@router.get("/admin")
async def overview_page(request: Request) -> Response:
    """The period's figures (`period`: 1h, 24h, 7d, 30d or all; 24h when absent or unknown)."""
    admin = await admin_page(request)
    if isinstance(admin, Response):
        return admin
    requested = request.query_params.get("period", DEFAULT_PERIOD)
    period = requested if requested in PERIODS else DEFAULT_PERIOD
    overview = overview_of(await period_report(get_state(request), period))
    return admin_view(
        request,
        "admin/overview.html",
        admin,
        "admin",
        overview=overview,
        period=period,
        period_name=PERIODS[period],
        periods=PERIODS,
        chart=series_chart(overview.points, overview.bucket_seconds),
        charts=[
            series_chart(overview.points, overview.bucket_seconds),
            series_chart(overview.points, overview.bucket_seconds, NARROW),
        ],
    )
