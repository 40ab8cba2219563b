"""Signed alert webhooks (SPEC §11): a POST of the JSON body with
`x-trollllm-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body" under the user's webhook secret>`
(and `x-trollllm-delivery`, the delivery's id, the same on every retry so a receiver can drop repeats).
The target is checked again on its resolved address, and the request goes to that address."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

from trollllm.alerts.targets import TargetRefused, parse_webhook_url, resolve_target

if TYPE_CHECKING:
    import httpx

WEBHOOK_TIMEOUT_S = 10.0
SIGNATURE_HEADER = "x-trollllm-signature"
DELIVERY_HEADER = "x-trollllm-delivery"


class WebhookFailed(Exception):
    """The receiver did not take the delivery (retried later)."""


def new_webhook_secret() -> str:
    """A signing secret: `whsec_` + 64 hex characters (32 bytes from a CSPRNG)."""
    return "whsec_" + secrets.token_hex(32)


def webhook_secret_context(user_id: int) -> str:
    """The associated data of a user's sealed webhook secret."""
    return f"alert_webhook_secret:{user_id}"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for `body` signed at `timestamp`."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


async def post_webhook(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    secret: str,
    timestamp: int,
    delivery_id: int,
    *,
    allow_private: bool,
) -> None:
    """Deliver once: `TargetRefused` when the address is not allowed (not retried), `WebhookFailed`
    when the receiver is unreachable or answers anything but 2xx."""
    import httpx  # here, not at import: the caller made the client, so it is loaded already (see `delivery`)

    target = await resolve_target(
        parse_webhook_url(url, allow_private=allow_private), allow_private=allow_private
    )
    host = target.url.hostname or ""
    headers = {
        "content-type": "application/json",
        "user-agent": "TrollLLM-Alerts/1",
        "host": target.url.netloc,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        DELIVERY_HEADER: str(delivery_id),
    }
    extensions = {"sni_hostname": host} if target.url.scheme == "https" else {}
    try:
        response = await client.post(target.pinned_url, content=body, headers=headers, extensions=extensions)
    except httpx.HTTPError as exc:
        raise WebhookFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc
    if not 200 <= response.status_code < 300:
        raise WebhookFailed(f"the receiver answered {response.status_code}")


__all__ = ["TargetRefused", "WebhookFailed", "post_webhook", "signature"]
