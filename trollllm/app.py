"""`create_app(settings)`: wiring and lifespan only."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from trollllm import __version__, serving
from trollllm.accounts.routes import router as accounts_router
from trollllm.accounts.timezones import router as user_settings_router
from trollllm.admin.router import build_admin_router
from trollllm.alerts.job import run_alerts_periodically
from trollllm.alerts.routes import router as alerts_router
from trollllm.alerts.smtp import check_smtp_url
from trollllm.betas.policy import TOPIC as BETAS_TOPIC
from trollllm.betas.policy import BetaPolicy
from trollllm.billing.counters import BillingCounters
from trollllm.billing.inflight import InFlight
from trollllm.billing.leases import CreditLeases
from trollllm.billing.outbox import SettlementOutbox
from trollllm.billing.renewal import renew_periodically
from trollllm.byok.routes import router as byok_router
from trollllm.clock import Clock, SystemClock
from trollllm.crypto import Passwords, derive_key
from trollllm.db import create_engine, create_sessionmaker, write_lock_of
from trollllm.friendkeys.routes import router as friendkeys_router
from trollllm.http_errors import PageErrors, install_error_handlers
from trollllm.invalidation import Invalidator
from trollllm.keyrotation.service import load_keybox
from trollllm.middleware import RequestContextMiddleware
from trollllm.migrate import upgrade_to_head
from trollllm.ops.health import router as health_router
from trollllm.ops.metrics import router as metrics_router
from trollllm.ops.metrics import serve_metrics_port, warn_if_exposed
from trollllm.payments.routes import router as payments_router
from trollllm.plans.expiry import PlanJobSchedule
from trollllm.plans.user_routes import router as plan_user_router
from trollllm.pricing.catalog import ModelCatalog
from trollllm.proxy.endpoints import proxy_handlers
from trollllm.proxy.fastpath import serve_proxy
from trollllm.proxy.openapi import QUICK_START, SECURITY_SCHEMES, proxy_paths
from trollllm.ratelimit.fallback import FallbackLimiter
from trollllm.ratelimit.instances import LiveInstances
from trollllm.ratelimit.limiter import build_limiter
from trollllm.settings import Settings, resolve_secret
from trollllm.state import AppState
from trollllm.storage.runners import build_runner
from trollllm.storage.sqlprogram import ProgramRunner
from trollllm.telemetry import MULTIPROC_ENV, Telemetry
from trollllm.upstream.affinity import KeyAffinity
from trollllm.upstream.pool import UpstreamPool
from trollllm.upstream.proxy_secrets import seal_proxy_urls
from trollllm.usage.retention import run_periodically
from trollllm.usage.routes import router as usage_router
from trollllm.web.account_pages import router as web_account_router
from trollllm.web.admin.router import build_admin_pages
from trollllm.web.alerts_page import router as web_alerts_router
from trollllm.web.api_docs import SWAGGER_DIR, SWAGGER_MOUNT
from trollllm.web.api_docs import router as api_docs_router
from trollllm.web.error_page import error_page, is_page_path
from trollllm.web.friend_key import router as web_friend_key_router
from trollllm.web.history import router as web_history_router
from trollllm.web.money_pages import router as web_money_router
from trollllm.web.render import STATIC_DIR
from trollllm.web.routes import router as web_router
from trollllm.web.security_headers import SecurityHeadersMiddleware
from trollllm.web.usage_page import router as web_usage_router

if TYPE_CHECKING:
    from redis.asyncio import Redis

MAINTENANCE_INTERVAL = timedelta(minutes=5)
SETTLE_ON_SHUTDOWN_S = 10.0
logger = logging.getLogger("trollllm")


class GatewayApp(FastAPI):
    """The gateway's ASGI app: the `/v1` proxy paths go straight to their handlers, the rest to FastAPI."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one ASGI event (see `trollllm.proxy.fastpath` for why the proxy skips FastAPI)."""
        if scope["type"] == "http":
            handlers = proxy_handlers(scope["path"])
            if handlers is not None:
                await serve_proxy(handlers, self.state.trollllm, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document with the proxy endpoints it does not route (`trollllm.proxy.openapi`) first,
        and the quick start as its description (the top of `/docs`)."""
        if self.openapi_schema is None:
            document = super().openapi()
            document["paths"] = {**proxy_paths(), **document["paths"]}
            document["info"]["description"] = QUICK_START
            schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes.update(SECURITY_SCHEMES)
            self.openapi_schema = document
        return self.openapi_schema


def create_app(
    settings: Settings, *, clock: Clock | None = None, freeze_startup_objects: bool = False
) -> FastAPI:
    """Build a gateway app. Configuration errors (e.g. no secret in production) raise here, at startup.

    `freeze_startup_objects` (for a serving process, not for tests that build many apps): once started,
    move what start-up built out of the garbage collector's way (`trollllm.serving`).
    """
    secret = resolve_secret(settings)
    if settings.smtp_url is not None:
        check_smtp_url(settings.smtp_url.get_secret_value())
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.is_embedded:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.effective_database_url)
        redis = _connect_redis(settings.redis_url) if settings.redis_url else None
        db: ProgramRunner | None = None
        try:
            if settings.should_auto_migrate:
                await upgrade_to_head(engine)
            sessions = create_sessionmaker(engine)
            db = build_runner(engine, write_lock_of(sessions))
            keybox = await load_keybox(sessions, secret)  # with the digest key a rotation carried forward
            await seal_proxy_urls(sessions, keybox)  # proxy credentials stored in plaintext before 0008
            outbox = SettlementOutbox(settings.data_dir / "outbox")
            await outbox.replay(db)  # settlements a previous run could not write, before any new request
            telemetry = Telemetry(os.environ.get(MULTIPROC_ENV) or None)
            upstream = UpstreamPool(
                sessions=sessions, keybox=keybox, clock=clock, settings=settings, telemetry=telemetry
            )
            await upstream.start()
            catalog = ModelCatalog(sessions, clock)
            invalidation = Invalidator(redis, settings.redis_key_prefix)
            invalidation.on("models", lambda _detail: catalog.invalidate())
            invalidation.on("upstream", lambda _detail: upstream.invalidate())
            betas = BetaPolicy(sessions, clock, telemetry)
            invalidation.on(BETAS_TOPIC, lambda _detail: betas.invalidate())
            await invalidation.start()
            limiter = build_limiter(redis, settings.redis_key_prefix, clock)
            live = LiveInstances(redis, settings.redis_key_prefix, minimum=settings.instances)
            await live.start()
            app.state.trollllm = AppState(
                settings=settings,
                clock=clock,
                engine=engine,
                sessions=sessions,
                db=db,
                outbox=outbox,
                in_flight=InFlight(),
                billing=BillingCounters(telemetry),
                telemetry=telemetry,
                redis=redis,
                limits=FallbackLimiter(limiter, clock, instances=lambda: live.count, telemetry=telemetry),
                keybox=keybox,
                passwords=Passwords(),
                jwt_key=derive_key(secret, "trollllm/jwt/v1"),
                catalog=catalog,
                upstream=upstream,
                invalidation=invalidation,
                affinity=KeyAffinity(clock, redis, prefix=settings.redis_key_prefix + "affinity:"),
                betas=betas,
                leases=CreditLeases(db, clock) if settings.serves_credit_leases else None,
            )
            # The outbox is replayed, holds left by a crashed process and logs past retention cleared, in the
            # background.
            maintenance = asyncio.create_task(
                run_periodically(
                    sessions, clock, interval=MAINTENANCE_INTERVAL, outbox=(outbox, db), engine=engine
                ),
                name="trollllm-maintenance",
            )
            # The holds of this instance's requests in flight are renewed while they run, however long.
            renewal = asyncio.create_task(
                renew_periodically(sessions, app.state.trollllm.in_flight, clock),
                name="trollllm-hold-renewal",
            )
            leases = app.state.trollllm.leases
            tending = asyncio.create_task(leases.tend() if leases is not None else asyncio.sleep(0))
            # Alerts: crossings announced and their emails and webhooks sent, off the request path.
            alerts = asyncio.create_task(run_alerts_periodically(app.state.trollllm), name="trollllm-alerts")
            plan_jobs = PlanJobSchedule(app.state.trollllm)  # plan expiry and monthly resets, daily
            metrics_port = None
            warn_if_exposed(settings)
            if settings.metrics_port is not None:
                metrics_port = await serve_metrics_port(
                    app.state.trollllm, settings.metrics_host, settings.metrics_port
                )
            if freeze_startup_objects:
                serving.freeze_startup_objects()
            try:
                yield
            finally:
                # Requests cancelled by the server's graceful timeout settle in their `finally`: wait.
                if not await app.state.trollllm.in_flight.drained(SETTLE_ON_SHUTDOWN_S):
                    logger.error("shutting down with requests unsettled; their holds go to the sweeper")
                tending.cancel()
                if leases is not None:
                    await leases.close()  # the last batch committed, the idle leases returned
                await plan_jobs.stop()
                if metrics_port is not None:
                    metrics_port.close()
                telemetry.close()
                maintenance.cancel()
                renewal.cancel()
                alerts.cancel()
                await asyncio.gather(maintenance, renewal, alerts, tending, return_exceptions=True)
                await invalidation.close()
                await live.close()
                await limiter.close()
                await upstream.close()
                await outbox.close()
        finally:
            if db is not None:  # also when start-up failed after it ran programs (it may keep connections)
                db.close()
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    app = GatewayApp(
        title="TrollLLM gateway",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # served by trollllm.web.api_docs from local assets
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    install_error_handlers(app, PageErrors(is_page=is_page_path, render=error_page))
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(accounts_router)
    app.include_router(user_settings_router)
    app.include_router(build_admin_router())
    app.include_router(usage_router)
    app.include_router(friendkeys_router)
    app.include_router(plan_user_router)
    app.include_router(alerts_router)
    app.include_router(byok_router)
    app.include_router(payments_router)
    app.include_router(web_router)
    app.include_router(web_history_router)
    app.include_router(web_account_router)
    app.include_router(web_friend_key_router)
    app.include_router(web_usage_router)
    app.include_router(web_money_router)
    app.include_router(web_alerts_router)
    app.include_router(build_admin_pages())
    app.include_router(api_docs_router)
    app.mount(SWAGGER_MOUNT, StaticFiles(directory=SWAGGER_DIR), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    return app


def _connect_redis(url: str) -> Redis:
    """A client whose pool makes callers wait for a connection instead of failing past its size.

    redis is imported here and by the components given a client, not at import: a process without Redis (the
    embedded shape) never loads it (~7 MB resident)."""
    from redis.asyncio import BlockingConnectionPool, Redis

    return Redis.from_pool(BlockingConnectionPool.from_url(url, max_connections=64, timeout=5))
