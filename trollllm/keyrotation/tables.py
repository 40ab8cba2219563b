"""Keys the gateway itself keeps, encrypted under the server secret."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from trollllm.db import Base, UtcDateTime, utcnow

DIGEST_KEY = "key-digest"
"""The HMAC key of gateway key digests, carried across secret rotations."""


class ServerKey(Base):
    """A key of the gateway's own (by purpose), AES-256-GCM under the server secret."""

    __tablename__ = "server_keys"

    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
