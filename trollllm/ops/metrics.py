"""Prometheus `/metrics`: on the gateway's port, or only on an internal one, optionally behind a token.

- `TROLLLLM_METRICS_TOKEN` set: a scrape needs `Authorization: Bearer <token>` (401 otherwise).
- No token: on the gateway's port only loopback addresses get them (others 404, as if there were none);
  behind a reverse proxy, uvicorn takes the client's address from `X-Forwarded-For` (`FORWARDED_ALLOW_IPS`).
- `TROLLLLM_METRICS_PORT` set: `/metrics` is 404 on the gateway's port and answered on
  `TROLLLLM_METRICS_HOST:TROLLLLM_METRICS_PORT` by a small HTTP server in every worker (`SO_REUSEPORT`:
  the workers share the port, and each answers with the sums of all of them).

Besides the `trollllm.telemetry` metrics, a scrape reads what the database and the data directory say
now: the settlement outbox depth, the open holds and the credit leases (count and nano-USD each), gauges
shared by every instance.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import func, select

from trollllm.billing.tables import CreditLease, Hold
from trollllm.errors import NotFound, Unauthenticated
from trollllm.settings import Settings
from trollllm.state import AppState, get_state

router = APIRouter(tags=["operations"])
logger = logging.getLogger("trollllm.ops.metrics")
_READ_TIMEOUT_S = 5.0


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of the gateway's metrics (404 here when they have their own port)."""
    state = get_state(request)
    if state.settings.metrics_port is not None:
        raise NotFound("metrics are served on their own port")
    if state.settings.metrics_token is None:
        if not is_loopback(request.client.host if request.client else None):
            raise NotFound()
    elif not token_accepted(state, request.headers.get("authorization")):
        raise Unauthenticated("metrics need the bearer token")
    return Response(await exposition(state), media_type=CONTENT_TYPE_LATEST)


def is_loopback(host: str | None) -> bool:
    """True for a loopback peer address (127.0.0.0/8, ::1, and IPv4 loopback mapped into IPv6)."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def warn_if_exposed(settings: Settings) -> None:
    """In production, say loudly at start-up when `/metrics` rests on the loopback check alone.

    A reverse proxy on the same machine that does not send `X-Forwarded-For` makes every visitor a loopback
    peer, so production should protect metrics with a token or move them to their own port.
    """
    if settings.env == "production" and settings.metrics_token is None and settings.metrics_port is None:
        logger.warning(
            "SECURITY: /metrics is served on the gateway's port to loopback addresses only, with no token; "
            "set TROLLLLM_METRICS_TOKEN or TROLLLLM_METRICS_PORT (a reverse proxy on this machine that does "
            "not send X-Forwarded-For would expose spend, holds and per-key errors)"
        )


def token_accepted(state: AppState, authorization: str | None) -> bool:
    """True without a configured token, or when `authorization` is `Bearer <token>` (constant time)."""
    token = state.settings.metrics_token
    if token is None:
        return True
    presented = (authorization or "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(presented.encode(), token.get_secret_value().encode())


async def exposition(state: AppState) -> bytes:
    """The text a scrape gets."""
    async with state.sessions() as session:
        holds, held = (
            await session.execute(select(func.count(), func.coalesce(func.sum(Hold.amount_nanos), 0)))
        ).one()
        leases, leased = (
            await session.execute(select(func.count(), func.coalesce(func.sum(CreditLease.amount_nanos), 0)))
        ).one()
    gauges = {
        "settlement_outbox_depth": state.outbox.depth(),
        "open_holds": int(holds),
        "open_holds_nanos": int(held),
        "credit_leases": int(leases),  # the holds of requests of money alone are served from these
        "credit_leases_nanos": int(leased),
        "instances": state.limits.instances,  # N of the fallback share ⌈RPM / N⌉ while Redis is down
    }
    return state.telemetry.render(gauges)


async def serve_metrics_port(state: AppState, host: str, port: int) -> asyncio.Server:
    """Answer `GET /metrics` on `host:port` (shared with the other workers); close it at shutdown."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                request_line = await reader.readline()
                authorization = None
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "authorization":
                        authorization = value.strip()
            method, target, *_ = request_line.decode("latin-1").split()
            if method not in ("GET", "HEAD") or target.split("?", 1)[0] != "/metrics":
                status, body, kind = "404 Not Found", b"not found\n", "text/plain"
            elif not token_accepted(state, authorization):
                status, body, kind = "401 Unauthorized", b"metrics need the bearer token\n", "text/plain"
            else:
                status, body, kind = "200 OK", await exposition(state), CONTENT_TYPE_LATEST
            head = f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError):
            pass  # a scraper that hung up or sent nonsense gets nothing
        except Exception:
            logger.exception("metrics scrape failed")
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port, reuse_port=True)
