"""Defect 5 and the `--workers` guard: settings and the CLI refuse clearly, never with a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trollllm.settings import Settings


def _cli(tmp_path: Path, *args: str, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TROLLLLM_DATA_DIR": str(tmp_path), **env_overrides}
    for name in ("DATABASE_URL", "REDIS_URL"):
        if name not in env_overrides:
            env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "trollllm", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("written", "level"),
    [
        ("warning", "WARNING"),
        ("Info", "INFO"),
        ("debug", "DEBUG"),
        ("WARN", "WARNING"),
        ("critical", "CRITICAL"),
    ],
)
def test_log_level_is_accepted_in_any_case(monkeypatch: pytest.MonkeyPatch, written: str, level: str) -> None:
    monkeypatch.setenv("TROLLLLM_LOG_LEVEL", written)

    assert Settings().log_level == level


def test_an_unknown_log_level_is_still_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROLLLLM_LOG_LEVEL", "loud")

    with pytest.raises(ValueError, match="log_level"):
        Settings()


def test_create_admin_without_a_terminal_says_use_password(tmp_path: Path) -> None:
    result = _cli(tmp_path, "create-admin", "boss")

    assert result.returncode == 2
    assert "use --password" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_runs_with_a_lower_case_log_level(tmp_path: Path) -> None:
    result = _cli(tmp_path, "migrate", TROLLLLM_LOG_LEVEL="warning")

    assert result.returncode == 0, result.stderr


def test_serve_refuses_several_workers_without_redis(tmp_path: Path) -> None:
    result = _cli(tmp_path, "serve", "--workers", "2", "--port", "1")

    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_several_workers_on_embedded_sqlite_even_with_redis(tmp_path: Path) -> None:
    result = _cli(tmp_path, "serve", "--workers", "2", "--port", "1", REDIS_URL="redis://127.0.0.1:6379/0")

    assert result.returncode == 2
    assert "embedded SQLite is served by one process" in result.stderr
    assert "DATABASE_URL" in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_several_workers_on_postgresql_without_redis(tmp_path: Path) -> None:
    database_url = "postgresql+asyncpg://postgres@127.0.0.1:5432/unused"  # refused before any connection
    result = _cli(tmp_path, "serve", "--workers", "2", "--port", "1", DATABASE_URL=database_url)

    assert result.returncode == 2
    assert "needs REDIS_URL so that the workers share rate limits" in result.stderr
    assert "Traceback" not in result.stderr
