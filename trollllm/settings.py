"""One typed configuration object.

Precedence: environment variables, then a `.env` file in the working directory, then the defaults below.
Every variable is `TROLLLLM_*` except `DATABASE_URL` and `REDIS_URL`.
"""

from __future__ import annotations

import os
import secrets
import ssl
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
    credit_leases: bool | None = Field(
        default=None,
        description="serve holds of money alone from slices of a balance each instance reserves "
        "(trollllm.billing.leases): on PostgreSQL one heavy user's requests do not queue on its row; on "
        "SQLite a request skips its hold's transaction. Unset: on with SQLite (one process, which recalls "
        "its every lease before a balance is taken down), off with PostgreSQL",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    upstream_connect_timeout_s: float = Field(default=10.0, gt=0)
    upstream_first_byte_timeout_s: float = Field(default=120.0, gt=0)
    upstream_idle_timeout_s: float = Field(default=60.0, gt=0)
    upstream_total_timeout_s: float = Field(
        default=1500.0, gt=0, description="deadline of a whole upstream exchange; below the hold lifetime"
    )
    upstream_connections_per_key: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="upstream connections one factory key may have in use at once (per process)",
    )
    upstream_connection_wait_s: float = Field(
        default=5.0,
        ge=0,
        description="how long a request may wait for a busy key's connection before it goes to another "
        "key, or gets 503 upstream_unavailable",
    )
    client_write_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="how long a write to a client may wait for it to read; past it the client counts as gone",
    )
    upstream_ca_bundle: Path | None = Field(
        default=None,
        description="a PEM file of CA certificates trusted for upstream TLS besides the system's",
    )
    graceful_shutdown_s: float = Field(
        default=60.0,
        gt=0,
        description="on SIGTERM, how long in-flight requests may go on before they are cut and settled",
    )
    jwt_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    login_max_failures: int = Field(
        default=10, ge=1, description="failed logins per (username, address) in the login window"
    )
    login_address_max_failures: int = Field(
        default=30, ge=1, description="failed logins per address, whatever the username, in the login window"
    )
    login_window_s: int = Field(default=15 * 60, ge=1)
    register_per_address_per_hour: int = Field(default=10, ge=0, description="0 disables the limit")
    registration: Literal["open", "invite", "closed"] = Field(
        default="open", description="who may register: anyone, holders of an invite, or no one"
    )
    key_reveals_per_hour: int = Field(default=10, ge=1)
    auto_migrate: bool | None = None
    cookie_secure: bool | None = Field(
        default=None, description="Secure (and __Host-) session cookies; unset: on in production"
    )
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
    stripe_secret_key: SecretStr | None = Field(
        default=None, description="with stripe_webhook_secret: card top-ups and plan purchase through Stripe"
    )
    stripe_webhook_secret: SecretStr | None = Field(default=None, description="whsec_…: verifies webhooks")
    stripe_api_base: str | None = Field(default=None, description="Stripe's API address (a test double)")
    topup_min_usd: Decimal = Field(default=Decimal(5), gt=0, le=1_000_000, description="smallest top-up")
    topup_max_usd: Decimal = Field(default=Decimal(10_000), gt=0, le=1_000_000, description="largest top-up")
    topup_presets_usd: str = Field(default="10,20,50,100", description="comma-separated amounts offered")
    referral_percent: Decimal = Field(
        default=Decimal(10), ge=0, le=100, description="share of a referee's payments granted to the referrer"
    )
    redeem_failures_per_hour: int = Field(
        default=10, ge=1, description="wrong redemption codes allowed per user and per address per hour"
    )
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

    @field_validator("upstream_ca_bundle", mode="before")
    @classmethod
    def _empty_path_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("upstream_ca_bundle")
    @classmethod
    def _readable_ca_bundle(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                ssl.create_default_context().load_verify_locations(cafile=value)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"{value} is no readable PEM file of CA certificates ({exc})") from exc
        return value

    @field_validator(
        "metrics_port",
        "metrics_token",
        "stripe_secret_key",
        "stripe_webhook_secret",
        "stripe_api_base",
        "cookie_secure",
        "credit_leases",
        "smtp_url",
        mode="before",
    )
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

    @field_validator("topup_presets_usd")
    @classmethod
    def _presets_are_amounts(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip() and not item.strip().replace(".", "", 1).isdigit():
                raise ValueError(f"not a USD amount: {item.strip()!r}")
        return value

    @property
    def payments_enabled(self) -> bool:
        """Stripe payments are on when both the secret key and the webhook secret are set."""
        return self.stripe_secret_key is not None and self.stripe_webhook_secret is not None

    @property
    def topup_presets(self) -> list[Decimal]:
        """The top-up amounts the billing page offers, within the minimum and maximum."""
        amounts = [Decimal(item.strip()) for item in self.topup_presets_usd.split(",") if item.strip()]
        return [amount for amount in amounts if self.topup_min_usd <= amount <= self.topup_max_usd]

    @property
    def secure_cookies(self) -> bool:
        """Whether session cookies are `Secure` (and `__Host-` prefixed): as set, else on in production."""
        return self.env == "production" if self.cookie_secure is None else self.cookie_secure

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
    def serves_credit_leases(self) -> bool:
        """`credit_leases`; unset, on in the embedded shape only: its one process recalls every lease of a
        balance before taking it down, where on PostgreSQL another instance's lease can stand in the way."""
        return self.credit_leases if self.credit_leases is not None else self.is_embedded

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
