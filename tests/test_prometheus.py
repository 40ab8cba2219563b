"""SPEC §9 Prometheus `/metrics` (issue 14, item 2): requests by route, model and status; upstream latency and
errors by factory key; spend; open holds; the outbox; a token or an internal port; sums over `--workers`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import AppFactory, AppHarness
from metrics_helpers import scrape
from plan_helpers import free_port
from prometheus_client.parser import text_string_to_metric_families
from proxy_world import OPENAI_MODEL, World
from services import REDIS_URL
from sqlalchemy import select

from trollllm.billing.tables import CreditLease, Hold
from trollllm.clock import ManualClock
from trollllm.db import transaction
from trollllm.ratelimit.fallback import FallbackLimiter
from trollllm.telemetry import Telemetry
from trollllm.upstream.tables import FactoryKey

HELLO = [{"role": "user", "content": "hello prometheus"}]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) → value, parsed as Prometheus parses the page."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


async def _factory_key_id(world: World, provider: str) -> str:
    async with world.state.sessions() as session:
        key_id = await session.scalar(select(FactoryKey.id).where(FactoryKey.provider == provider))
    return str(key_id)


async def test_a_proxied_request_is_counted_by_route_model_and_status_with_its_spend(
    any_world: World,
) -> None:
    async with any_world.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=HELLO)
    cost_nanos = int(Decimal(raw.headers["x-trollllm-cost-usd"]) * 10**9)
    text = (await any_world.gateway.client.get("/metrics")).text
    labels = {"route": "/v1/chat/completions", "model": OPENAI_MODEL, "status": "200"}

    assert value(text, "trollllm_requests_total", **labels) == 1
    assert value(text, "trollllm_request_duration_seconds_count", **labels) == 1
    assert value(text, "trollllm_request_duration_seconds_bucket", **labels, le="+Inf") == 1
    key = await _factory_key_id(any_world, "openai")
    assert value(text, "trollllm_upstream_response_seconds_count", factory_key=key) == 1
    assert 0 < cost_nanos == value(text, "trollllm_spend_nanos_total")


async def test_an_upstream_error_is_counted_against_its_factory_key(any_world: World) -> None:
    response = await any_world.gateway.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {any_world.user.api_key}"},
        json={"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "hi [mock status=500]"}]},
    )
    assert response.status_code == 500
    text = (await any_world.gateway.client.get("/metrics")).text
    key = await _factory_key_id(any_world, "openai")
    assert value(text, "trollllm_upstream_errors_total", factory_key=key, kind="server_error") == 1
    labels = {"route": "/v1/chat/completions", "model": OPENAI_MODEL, "status": "500"}
    assert value(text, "trollllm_requests_total", **labels) == 1
    assert value(text, "trollllm_spend_nanos_total") == 0


async def test_a_model_name_the_gateway_does_not_know_is_never_a_label(world: World) -> None:
    response = await world.gateway.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {world.user.api_key}"},
        json={"model": "made-up-by-a-client-1234", "messages": HELLO},
    )
    assert response.status_code == 404
    text = (await world.gateway.client.get("/metrics")).text
    assert "made-up-by-a-client-1234" not in text
    assert value(text, "trollllm_requests_total", route="/v1/chat/completions", model="", status="404") == 1


def _open_hold(user_id: int, now: datetime) -> Hold:
    return Hold(request_id="req_open", user_id=user_id, amount_nanos=1234, expires_at=now)


def _lease_out(user_id: int, now: datetime) -> CreditLease:
    return CreditLease(instance_id="an-instance", user_id=user_id, amount_nanos=1234, expires_at=now)


@pytest.mark.parametrize(("gauge", "row"), [("open_holds", _open_hold), ("credit_leases", _lease_out)])
async def test_what_the_database_holds_is_read_at_each_scrape(
    any_gateway: AppHarness, gauge: str, row: Callable[[int, datetime], Hold | CreditLease]
) -> None:
    from metrics_helpers import add_users

    users = await add_users(any_gateway.state.sessions, "holder")
    text = (await scrape(any_gateway)).text
    assert (value(text, f"trollllm_{gauge}"), value(text, f"trollllm_{gauge}_nanos")) == (0, 0)
    async with transaction(any_gateway.state.sessions) as session:
        session.add(row(users["holder"], any_gateway.state.clock.now()))
    text = (await scrape(any_gateway)).text
    assert (value(text, f"trollllm_{gauge}"), value(text, f"trollllm_{gauge}_nanos")) == (1, 1234)
    assert "trollllm_settlement_outbox_depth 0\n" in text


async def test_the_old_metric_names_keep_their_integer_lines(gateway: AppHarness) -> None:
    text = (await scrape(gateway)).text
    for line in (
        "# TYPE trollllm_overages counter\ntrollllm_overages 0\n",
        "# TYPE trollllm_overage_charged_nanos counter\ntrollllm_overage_charged_nanos 0\n",
        "# TYPE trollllm_rate_limiter_outages counter\ntrollllm_rate_limiter_outages 0\n",
        "# TYPE trollllm_rate_limiter_degraded gauge\ntrollllm_rate_limiter_degraded 0\n",
    ):
        assert line in text
    assert text_string_to_metric_families(text)  # the whole page parses


async def test_metrics_need_the_bearer_token_when_one_is_set(
    app_factory: AppFactory, embedded_database_url: str
) -> None:
    gateway: AppHarness = await app_factory(embedded_database_url, metrics_token="a-scrape-token-of-ours")
    assert (await gateway.client.get("/metrics")).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert (await gateway.client.get("/metrics", headers=wrong)).status_code == 401
    right = {"Authorization": "Bearer a-scrape-token-of-ours"}
    response = await gateway.client.get("/metrics", headers=right)
    assert response.status_code == 200
    assert "trollllm_settlement_outbox_depth 0" in response.text


async def _raw_get(port: int, path: str, authorization: str | None = None) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"GET {path} HTTP/1.1\r\nHost: metrics\r\n"
    if authorization:
        head += f"Authorization: {authorization}\r\n"
    writer.write((head + "\r\n").encode())
    answer = (await reader.read()).decode()
    writer.close()
    status_line, _, rest = answer.partition("\r\n")
    return int(status_line.split()[1]), rest.split("\r\n\r\n", 1)[1]


async def test_metrics_on_their_own_port_are_not_on_the_gateway_port(
    app_factory: AppFactory, embedded_database_url: str
) -> None:
    port = free_port()
    gateway: AppHarness = await app_factory(embedded_database_url, metrics_port=port, metrics_token="tok-42")
    assert (await gateway.client.get("/metrics")).status_code == 404
    status, body = await _raw_get(port, "/metrics", "Bearer tok-42")
    assert status == 200 and "trollllm_rate_limiter_degraded 0" in body
    assert (await _raw_get(port, "/metrics"))[0] == 401
    assert (await _raw_get(port, "/healthz", "Bearer tok-42"))[0] == 404


async def test_workers_add_up_their_counts_in_every_scrape(
    tmp_path: Path, redis_prefix: str, postgres_database_url: str
) -> None:
    # Several workers serve only the scaled shape (embedded SQLite is one process): PostgreSQL and Redis.
    shared = tmp_path / "prom"
    shared.mkdir()
    (shared / "counter_999999.db").write_bytes(b"left by an earlier run")
    port = free_port()
    env: dict[str, Any] = {
        **os.environ,
        "TROLLLLM_DATA_DIR": str(tmp_path),
        "TROLLLLM_SECRET": "s" * 40,
        "TROLLLLM_PORT": str(port),
        "TROLLLLM_LOG_LEVEL": "WARNING",
        "REDIS_URL": REDIS_URL,
        "TROLLLLM_REDIS_KEY_PREFIX": redis_prefix,
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "DATABASE_URL": postgres_database_url,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "trollllm", "serve", "--workers", "2"], env=env, cwd=tmp_path
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(1000):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                assert process.poll() is None, "the gateway exited at start"
                await asyncio.sleep(0.02)
            assert not (shared / "counter_999999.db").exists()

            async def unauthenticated() -> int:
                # A connection of its own each time, so both workers take some.
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as own:
                    return (await own.get("/v1/models")).status_code

            assert set(await asyncio.gather(*(unauthenticated() for _ in range(40)))) == {401}
            for _ in range(6):
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as scraper:
                    text = (await scraper.get("/metrics")).text
                labels = {"route": "/v1/models", "model": "", "status": "401"}
                assert value(text, "trollllm_requests_total", **labels) == 40
        assert len({path.name.split("_")[-1] for path in shared.glob("counter_*.db")}) == 2  # two workers
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_a_limiter_outage_is_counted_and_shown_degraded_until_redis_is_back(
    clock: ManualClock,
) -> None:
    from test_rate_limits import _BrokenLimiter

    telemetry = Telemetry()
    broken = _BrokenLimiter(clock)
    limiter = FallbackLimiter(broken, clock, retry_interval_s=2, telemetry=telemetry)
    gauges = {"settlement_outbox_depth": 0}

    await limiter.hit("rpm:1", 10, 60)
    await limiter.hit("rpm:1", 10, 60)
    during = telemetry.render(gauges).decode()
    broken.healthy = True
    clock.advance(2)
    await limiter.hit("rpm:1", 10, 60)
    after = telemetry.render(gauges).decode()

    assert "trollllm_rate_limiter_degraded 1\n" in during
    assert "trollllm_rate_limiter_outages 1\n" in during
    assert "trollllm_rate_limiter_fallback_decisions 2\n" in during
    assert "trollllm_rate_limiter_degraded 0\n" in after
    assert "trollllm_rate_limiter_outages 1\n" in after
