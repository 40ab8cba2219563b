"""The typed state of one running app, built in its lifespan and reached from requests.

No module-level mutable state: every connection pool, cache and limiter lives here, so each test (or
each app instance in one process) has its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from trollllm.betas.policy import BetaPolicy
from trollllm.billing.counters import BillingCounters
from trollllm.billing.inflight import InFlight
from trollllm.billing.leases import CreditLeases
from trollllm.billing.outbox import SettlementOutbox
from trollllm.clock import Clock
from trollllm.crypto import KeyBox, Passwords
from trollllm.invalidation import Invalidator
from trollllm.pricing.catalog import ModelCatalog
from trollllm.ratelimit.fallback import FallbackLimiter
from trollllm.settings import Settings
from trollllm.storage.sqlprogram import ProgramRunner
from trollllm.telemetry import Telemetry
from trollllm.upstream.affinity import KeyAffinity
from trollllm.upstream.pool import UpstreamPool

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass(slots=True)
class AppState:
    """Everything a request handler may need, typed."""

    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    db: ProgramRunner  # the hot path's SQL (`trollllm.storage.sqlprogram`)
    outbox: SettlementOutbox  # settlements the database refused, replayed later
    in_flight: InFlight  # admitted requests not yet settled (shutdown waits for them)
    billing: BillingCounters  # overages, for /metrics
    telemetry: Telemetry  # the Prometheus metrics (/metrics)
    redis: Redis | None
    limits: FallbackLimiter  # every rate limit (RPM, logins, reveals, registrations), shared when Redis is
    keybox: KeyBox
    passwords: Passwords
    jwt_key: bytes
    catalog: ModelCatalog
    upstream: UpstreamPool
    invalidation: Invalidator
    affinity: KeyAffinity  # the factory key of each conversation's last turn
    betas: BetaPolicy  # the anthropic-beta values refused (cached) and those forwarded lately
    leases: CreditLeases | None = None  # `Settings.serves_credit_leases`: holds served from leases


def get_state(connection: HTTPConnection) -> AppState:
    """The app state of the app serving this request."""
    state: AppState = connection.app.state.trollllm
    return state
