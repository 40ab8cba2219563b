"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import text

from trollllm.errors import ServiceUnavailable
from trollllm.state import get_state

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> dict[str, str]:
    """The database (and Redis, when configured) answer; 503 otherwise."""
    state = get_state(request)
    checks = {"database": "ok"}
    try:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not ready"
        raise ServiceUnavailable("database is not reachable", check="database") from exc
    if state.redis is not None:
        try:
            await state.redis.ping()
        except Exception as exc:
            raise ServiceUnavailable("redis is not reachable", check="redis") from exc
        checks["redis"] = "ok"
    return {"status": "ready", **checks}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> str:
    """Prometheus text exposition of the gateway's counters: the shared rate limiter's health, costs past
    their hold, and the settlements waiting in the outbox."""
    state = get_state(request)
    lines = []
    gauges = {
        "settlement_outbox_depth": state.outbox.depth(),
        "instances": state.limits.instances,  # N of the fallback share ⌈RPM / N⌉
    }
    counters = {**state.limits.metrics(), **state.billing.metrics(), **gauges}
    for name, value in sorted(counters.items()):
        kind = "gauge" if name.endswith("degraded") or name in gauges else "counter"
        lines += [f"# TYPE trollllm_{name} {kind}", f"trollllm_{name} {value}"]
    return "\n".join(lines) + "\n"
