"""Tables of alerts: each user's choices, the crossings in force, the notifications, the delivery outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from trollllm.db import Base, Nanos, UtcDateTime, utcnow


class AlertSettings(Base):
    """A user's alert channels and thresholds (no row: the defaults, no channel)."""

    __tablename__ = "alert_settings"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(254))
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    # The webhook signing secret, AES-GCM under the server secret (`webhook_secret_context`).
    webhook_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    low_balance_nanos: Mapped[int | None] = mapped_column(Nanos)  # None: no low-balance alert
    plan_expiry_days: Mapped[int | None] = mapped_column(Integer)  # None: no expiry reminder
    usage_percents: Mapped[str] = mapped_column(String(200))  # JSON list of integers, ascending
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AlertState(Base):
    """A condition in force that has been announced; deleted when it stops holding, which re-arms it."""

    __tablename__ = "alert_states"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fired_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Notification(Base):
    """One alert as its recipient sees it in the dashboard."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(String(500))
    data: Mapped[str] = mapped_column(Text)  # JSON object
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AlertDelivery(Base):
    """One notification to send on one channel: the durable outbox, retried with backoff until sent."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index("ix_alert_deliveries_state_next_attempt_at", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    target: Mapped[str] = mapped_column(String(2048))  # the address or URL at the time of the crossing
    body: Mapped[str] = mapped_column(Text)  # the webhook's JSON body, or the email's text
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
