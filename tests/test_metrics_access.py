"""SPEC §9 `/metrics` on the gateway's port (issue 29, item 6): without `TROLLLLM_METRICS_TOKEN` only
loopback addresses get it (others 404); with one, the bearer is required from anywhere; in production a
loud start-up line when neither a token nor the internal port protects it."""

from __future__ import annotations

import logging

import pytest
from conftest import AppFactory, AppHarness
from metrics_helpers import scrape

OUTSIDE = ("198.51.100.7", 5000)


async def test_metrics_from_a_non_loopback_address_are_404_by_default(gateway: AppHarness) -> None:
    response = await scrape(gateway, client=OUTSIDE)
    assert response.status_code == 404
    assert "trollllm_" not in response.text
    assert response.json()["error"]["type"] == "not_found"


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
async def test_metrics_from_a_loopback_address_need_no_token(gateway: AppHarness, address: str) -> None:
    response = await scrape(gateway, client=(address, 5000))
    assert response.status_code == 200
    assert "trollllm_rate_limiter_degraded 0" in response.text


@pytest.mark.parametrize("address", ["127.0.0.1", "198.51.100.7"])
async def test_with_a_token_every_address_needs_the_bearer(
    app_factory: AppFactory, embedded_database_url: str, address: str
) -> None:
    gateway: AppHarness = await app_factory(embedded_database_url, metrics_token="scrape-token-77")
    assert (await scrape(gateway, client=(address, 5000))).status_code == 401
    right = await scrape(gateway, client=(address, 5000), authorization="Bearer scrape-token-77")
    assert right.status_code == 200
    assert "trollllm_settlement_outbox_depth 0" in right.text


async def test_production_without_a_token_or_a_metrics_port_says_so_loudly_at_start(
    app_factory: AppFactory, embedded_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="trollllm.ops.metrics"):
        await app_factory(embedded_database_url, env="production")
    lines = [record for record in caplog.records if record.name == "trollllm.ops.metrics"]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "TROLLLLM_METRICS_TOKEN" in lines[0].getMessage()
    assert "TROLLLLM_METRICS_PORT" in lines[0].getMessage()


@pytest.mark.parametrize(
    "overrides",
    [{"env": "development"}, {"env": "production", "metrics_token": "scrape-token-77"}],
    ids=["development", "production-with-token"],
)
async def test_no_start_up_line_when_metrics_are_protected_or_not_in_production(
    app_factory: AppFactory,
    embedded_database_url: str,
    caplog: pytest.LogCaptureFixture,
    overrides: dict[str, str],
) -> None:
    with caplog.at_level(logging.WARNING, logger="trollllm.ops.metrics"):
        await app_factory(embedded_database_url, **overrides)
    assert not [record for record in caplog.records if record.name == "trollllm.ops.metrics"]
