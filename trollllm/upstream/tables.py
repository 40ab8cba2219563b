"""Tables of the operator's upstream side: factory keys and outbound proxies."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from trollllm.db import Base, Nanos, UtcDateTime, utcnow

FACTORY_KEY_STATUSES = ("healthy", "cooling_down", "disabled")


class Proxy(Base):
    """An outbound HTTP(S) or SOCKS5 proxy that factory keys can be bound to."""

    __tablename__ = "proxies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    """The URL as shown: its password masked once `url_encrypted` holds the whole URL."""
    url_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The whole URL, credentials included, AES-256-GCM; None for a row not sealed yet (plaintext `url`)."""
    last_error: Mapped[str | None] = mapped_column(String(1000))
    """Why the last request through this proxy was refused by the proxy itself; None once one passes."""
    last_error_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class FactoryKey(Base):
    """An operator's upstream key, AES-256-GCM encrypted; shown only as `last4`."""

    __tablename__ = "factory_keys"
    __table_args__ = (
        CheckConstraint("status IN ('healthy', 'cooling_down', 'disabled')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    # Any row of `providers`; the key serves the models of that provider, in its wire format.
    provider: Mapped[str] = mapped_column(String(32), ForeignKey("providers.name", ondelete="RESTRICT"))
    base_url: Mapped[str] = mapped_column(String(2048))
    key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    last4: Mapped[str] = mapped_column(String(4))
    proxy_id: Mapped[int | None] = mapped_column(ForeignKey("proxies.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(16), default="healthy")
    last_error: Mapped[str | None] = mapped_column(String(1000))
    cooldown_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    requests_count: Mapped[int] = mapped_column(Integer, default=0)
    spend_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
