"""Operations (SPEC §9): health probes, OpenAPI, settings that fail fast, the secret file, the CLI."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import AppFactory, AppHarness, make_settings
from metrics_helpers import scrape
from services import REDIS_URL

from trollllm.cli import main
from trollllm.errors import ConfigurationError
from trollllm.settings import Settings, resolve_secret


async def test_healthz_answers_ok(gateway: AppHarness) -> None:
    response = await gateway.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_the_database(any_gateway: AppHarness) -> None:
    response = await any_gateway.client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


async def test_readyz_checks_redis_when_configured(
    app_factory: AppFactory, embedded_database_url: str, redis_prefix: str
) -> None:
    gateway = await app_factory(embedded_database_url, redis_url=REDIS_URL, redis_key_prefix=redis_prefix)
    response = await gateway.client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["redis"] == "ok"


async def test_readyz_is_503_when_redis_is_unreachable(
    app_factory: AppFactory, embedded_database_url: str
) -> None:
    gateway = await app_factory(embedded_database_url, redis_url="redis://127.0.0.1:1/0")
    response = await gateway.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["check"] == "redis"


async def test_openapi_document_is_served_with_the_account_paths(gateway: AppHarness) -> None:
    response = await gateway.client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/auth/register" in paths
    assert "/api/user/me" in paths
    assert (await gateway.client.get("/docs")).status_code == 200


async def test_unknown_api_path_is_a_json_404(gateway: AppHarness) -> None:
    response = await gateway.client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


async def test_body_over_the_limit_is_413(app_factory: AppFactory, embedded_database_url: str) -> None:
    gateway = await app_factory(embedded_database_url, max_body_bytes=2048)
    response = await gateway.client.post("/api/auth/register", content=b"x" * 4096)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_production_without_a_secret_is_a_startup_error(tmp_path: Path) -> None:
    settings = Settings.model_validate({"env": "production", "data_dir": tmp_path, "secret": None})
    with pytest.raises(ConfigurationError, match="TROLLLLM_SECRET"):
        resolve_secret(settings)


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="32"):
        resolve_secret(Settings.model_validate({"data_dir": tmp_path, "secret": "short"}))


def test_development_generates_a_secret_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": tmp_path, "secret": None})
    first = resolve_secret(settings)
    second = resolve_secret(settings)
    assert first == second
    assert len(first) >= 32
    assert stat.S_IMODE(os.stat(tmp_path / "secret.key").st_mode) == 0o600


def test_unknown_database_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL"):
        Settings.model_validate({"database_url": "mysql://x"})


def test_settings_read_documented_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROLLLLM_PORT", "9123")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    settings = Settings()
    assert settings.port == 9123
    assert settings.effective_database_url == "postgresql+asyncpg://u@h/db"
    assert not settings.is_embedded


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TROLLLLM_DATA_DIR": str(tmp_path), "TROLLLLM_LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "trollllm", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _in_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `_cli` gives its process, for `main()` run in this one (no process start, no second import)."""
    monkeypatch.setenv("TROLLLLM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TROLLLLM_LOG_LEVEL", "WARNING")
    monkeypatch.delenv("DATABASE_URL", raising=False)


def test_cli_migrate_then_create_admin_then_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(tmp_path, "migrate").returncode == 0  # the console command as a process
    _in_process_environment(tmp_path, monkeypatch)
    assert main(["create-admin", "boss", "--password", "a long password"]) == 0
    assert "created" in capsys.readouterr().out
    assert main(["create-admin", "boss", "--password", "another password"]) == 0
    assert "promoted" in capsys.readouterr().out


def test_cli_create_admin_refuses_a_short_password(tmp_path: Path) -> None:
    result = _cli(tmp_path, "create-admin", "boss", "--password", "short")
    assert result.returncode == 2


async def test_created_admin_can_log_in(
    app_factory: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _in_process_environment(tmp_path, monkeypatch)
    assert await asyncio.to_thread(main, ["create-admin", "boss", "--password", "a long password"]) == 0
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'trollllm.db'}")
    gateway = await app_factory(settings.effective_database_url, secret=None)
    response = await gateway.client.post(
        "/api/auth/login", json={"username": "boss", "password": "a long password"}
    )
    assert response.status_code == 200
    assert response.json()["user"]["role"] == "admin"


async def test_metrics_expose_the_rate_limiter_health_in_prometheus_format(gateway: AppHarness) -> None:
    response = await scrape(gateway)
    assert response.status_code == 200
    assert "# TYPE trollllm_rate_limiter_outages counter" in response.text
    assert "trollllm_rate_limiter_degraded 0" in response.text
