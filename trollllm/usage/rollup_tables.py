"""The hourly rollups of the request logs: what the admin metrics read, kept after the logs' 30-day purge.

Every rollup row is a sum of request-log rows (`trollllm.usage.rollup` keeps them): the logs with
`id <= usage_rollup_state.last_log_id` are in them, exactly once; the newer logs are read live.
Times are whole hours since 1970-01-01 UTC (`epoch_hour`), so buckets are integer arithmetic on both
databases.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from trollllm.db import Base, Nanos


class _Sums:
    """The sums every rollup keeps."""

    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_hit_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_nanos: Mapped[int] = mapped_column(Nanos, default=0)


class HourlyModelUsage(_Sums, Base):
    """Requests of one model in one hour. `first_log_id` bounds the ids of that hour's logs from below,
    so the last hour can be read from the logs by their primary key."""

    __tablename__ = "usage_hourly_models"

    epoch_hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    first_log_id: Mapped[int] = mapped_column(BigInteger)


class HourlyUserUsage(_Sums, Base):
    """Requests of one user (the owner, for Friend Key requests) in one hour."""

    __tablename__ = "usage_hourly_users"

    epoch_hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class SixHourlyUserUsage(_Sums, Base):
    """Requests of one user in one 6-hour block (00, 06, 12, 18 UTC; `epoch_hour` is its first hour): the
    `7d` period's top users read 28 blocks instead of 168 hours."""

    __tablename__ = "usage_six_hourly_users"

    epoch_hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class UserUsageTotal(_Sums, Base):
    """Requests of one user, ever (the "all" period's top users without reading every hour)."""

    __tablename__ = "usage_user_totals"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class HourlyLatency(Base):
    """How many requests of one hour took less than `under_ms` (and at least the bucket below it)."""

    __tablename__ = "usage_hourly_latency"

    epoch_hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    under_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupState(Base):
    """One row: the highest request-log id whose row is in the rollups."""

    __tablename__ = "usage_rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_log_id: Mapped[int] = mapped_column(BigInteger, default=0)


class RolledUpUnsettled(_Sums, Base):
    """An `unsettled` log row that is in the rollups. A late settlement deletes such a row and writes its
    own; the rollups then take this contribution back (`trollllm.usage.rollup`)."""

    __tablename__ = "usage_rollup_unsettled"

    log_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[int] = mapped_column(BigInteger)  # seconds since 1970-01-01 UTC of its created_at
    latency_ms: Mapped[int] = mapped_column(BigInteger, default=0)
