"""One typed configuration object.

Precedence: environment variables, then a `.env` file in the working directory, then the defaults below.
Every variable is `TROLLLLM_*` except `DATABASE_URL` and `REDIS_URL`.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trollllm.errors import ConfigurationError

SECRET_FILE_NAME = "secret.key"  # noqa: S105 (a file name, not a secret)
SQLITE_FILE_NAME = "trollllm.db"
HOLD_TTL = timedelta(minutes=30)
"""How long a hold lives after it is placed or renewed; then the sweeper frees it."""
HOLD_RENEWAL_INTERVAL = timedelta(minutes=5)
"""How often each instance renews the holds of its requests in flight (`trollllm.billing.renewal`)."""
SETTLE_MARGIN_S = 60.0
"""Time left between a request's total deadline and the expiry of its hold, to settle it."""


# Betas that change neither prices nor what a request may bill beyond its hold. Left out on purpose:
# context-1m (a dearer price tier), extended-cache-ttl (dearer cache writes), code-execution (container
# fees), files-api (inputs not in the request), mcp-client and web-fetch (inputs fetched upstream).
DEFAULT_ANTHROPIC_BETAS = ",".join(
    (
        "prompt-caching-2024-07-31",
        "token-efficient-tools-2025-02-19",
        "interleaved-thinking-2025-05-14",
        "fine-grained-tool-streaming-2025-05-14",
        "output-128k-2025-02-19",
        "computer-use-2024-10-22",
        "computer-use-2025-01-24",
    )
)


class Settings(BaseSettings):
    """Gateway configuration; see `.env.example` for every variable with its meaning."""

    model_config = SettingsConfigDict(
        env_prefix="TROLLLLM_", env_file=".env", extra="ignore", populate_by_name=True
    )

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("./data")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url")
    )
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "redis_url"))
    redis_key_prefix: str = "trollllm:"
    secret: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    instances: int = Field(
        default=1,
        ge=1,
        le=10_000,
        description="the least number of gateway processes sharing Redis (N of the RPM fallback share "
        "⌈RPM / N⌉ is the live count seen in Redis, never below this)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    upstream_connect_timeout_s: float = Field(default=10.0, gt=0)
    upstream_first_byte_timeout_s: float = Field(default=120.0, gt=0)
    upstream_idle_timeout_s: float = Field(default=60.0, gt=0)
    upstream_total_timeout_s: float = Field(
        default=1500.0, gt=0, description="deadline of a whole upstream exchange; below the hold lifetime"
    )
    client_write_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="how long a write to a client may wait for it to read; past it the client counts as gone",
    )
    graceful_shutdown_s: float = Field(
        default=60.0,
        gt=0,
        description="on SIGTERM, how long in-flight requests may go on before they are cut and settled",
    )
    anthropic_betas: str = Field(
        default=DEFAULT_ANTHROPIC_BETAS,
        description="comma-separated anthropic-beta flags forwarded; others are refused (400)",
    )
    jwt_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    login_max_failures: int = Field(default=10, ge=1)
    login_window_s: int = Field(default=15 * 60, ge=1)
    register_per_address_per_hour: int = Field(default=0, ge=0, description="0 disables the limit")
    key_reveals_per_hour: int = Field(default=10, ge=1)
    auto_migrate: bool | None = None
    cookie_secure: bool = False
    friend_key_max_limit_usd: Decimal = Field(
        default=Decimal(10000), ge=0, le=1_000_000_000, description="ceiling of one Friend Key model limit"
    )
    provider_key_check_timeout_s: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="a saved own provider key is checked with GET {base}/models within this; 0: not checked",
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="serve /metrics only there (on metrics_host), not on port"
    )
    metrics_host: str = "127.0.0.1"
    metrics_token: SecretStr | None = Field(default=None, description="/metrics needs this bearer token")
    smtp_url: SecretStr | None = Field(
        default=None, description="smtp://[user:pass@]host[:port] or smtps://…: alert emails (none: not sent)"
    )
    alert_from: str = Field(default="trollllm@localhost", min_length=3, description="alert emails' sender")
    webhook_allow_private: bool = Field(
        default=False, description="alert webhooks may target private, loopback and link-local addresses"
    )
    alert_interval_s: float = Field(
        default=60.0, gt=0, le=3600, description="how often alerts are checked and their deliveries sent"
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://", "postgresql://")):
            raise ValueError("DATABASE_URL must be sqlite+aiosqlite://… or postgresql+asyncpg://…")
        if value.startswith("postgresql://"):
            value = "postgresql+asyncpg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_any_case(cls, value: object) -> object:
        # Operators write `warning`, `Info` or Python's `WARN` alias; the logging module takes upper case.
        if isinstance(value, str):
            level = value.strip().upper()
            return "WARNING" if level == "WARN" else level
        return value

    @field_validator("redis_url")
    @classmethod
    def _empty_redis_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("metrics_port", "metrics_token", "smtp_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _deadline_below_hold_ttl(self) -> Settings:
        # A request's hold must outlive the request: past its TTL the sweeper frees it, and a late
        # settlement could then only charge what is free. Leave a margin to settle in.
        limit_s = HOLD_TTL.total_seconds() - SETTLE_MARGIN_S
        if self.upstream_total_timeout_s > limit_s:
            raise ValueError(
                f"TROLLLLM_UPSTREAM_TOTAL_TIMEOUT_S must be at most {limit_s:g} s: a request must end "
                f"{SETTLE_MARGIN_S:g} s before its hold expires ({HOLD_TTL.total_seconds():g} s)"
            )
        return self

    @property
    def allowed_anthropic_betas(self) -> frozenset[str]:
        """The `anthropic-beta` flags forwarded upstream."""
        return frozenset(flag.strip() for flag in self.anthropic_betas.split(",") if flag.strip())

    @property
    def effective_database_url(self) -> str:
        """The database URL in use: `DATABASE_URL`, or the SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / SQLITE_FILE_NAME).resolve()}"

    @property
    def is_embedded(self) -> bool:
        """True when running on the SQLite file (the one-command shape)."""
        return self.effective_database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        """Migrations run at startup in embedded mode unless told otherwise."""
        return self.is_embedded if self.auto_migrate is None else self.auto_migrate


def resolve_secret(settings: Settings) -> bytes:
    """Return the server secret, generating and keeping one in the data dir in development.

    In production a missing `TROLLLLM_SECRET` is a startup error: a generated secret on one machine would
    make JWTs and encrypted keys unreadable on every other.
    """
    if settings.secret is not None and settings.secret.get_secret_value():
        value = settings.secret.get_secret_value()
        if len(value) < 32:
            raise ConfigurationError("TROLLLLM_SECRET must be at least 32 characters long")
        return value.encode()
    if settings.env == "production":
        raise ConfigurationError(
            "TROLLLLM_SECRET is required when TROLLLLM_ENV=production "
            "(generate one with: python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / SECRET_FILE_NAME
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()
