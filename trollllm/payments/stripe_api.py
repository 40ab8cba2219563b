"""The one boundary with Stripe, through the official `stripe` library: create a Checkout Session, and
verify a webhook's signature. Stripe's exceptions are translated here, to the gateway's errors.

`stripe` is imported by the functions that call it, at the first payment: with the `requests` stack under it,
it is ~10 MB a serving process that takes no payment never needs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from trollllm.errors import InvalidSignature, PaymentProviderError
from trollllm.settings import Settings

logger = logging.getLogger("trollllm.payments")
SIGNATURE_TOLERANCE_S = 300  # Stripe's own default: an older signed delivery is a replay


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    """What the gateway keeps of a created session."""

    session_id: str
    url: str


@dataclass(frozen=True, slots=True)
class VerifiedEvent:
    """A webhook event whose signature held: its id, type and `data.object` as plain JSON."""

    event_id: str
    type: str
    object: dict[str, Any]


def _secret(value: Any) -> str:
    return str(value.get_secret_value()) if value is not None else ""


async def create_checkout_session(
    settings: Settings,
    *,
    amount_cents: int,
    product: str,
    success_url: str,
    cancel_url: str,
    user_id: int,
    metadata: dict[str, str],
) -> CheckoutSession:
    """Create a one-off card payment of `amount_cents` USD; its URL is where the user pays."""
    import stripe  # at the first payment (see the module's docstring)

    # aiohttp, not the library's httpx client: that one posts bytes through httpx's deprecated `data=`.
    http_client = stripe.AIOHTTPClient(timeout=20)
    base = {"api": settings.stripe_api_base.rstrip("/")} if settings.stripe_api_base else None
    client = stripe.StripeClient(
        _secret(settings.stripe_secret_key),
        base_addresses=base,  # type: ignore[arg-type]
        http_client=http_client,
        max_network_retries=2,
    )
    try:
        session = await client.v1.checkout.sessions.create_async(
            params={
                "mode": "payment",
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": "usd",
                            "unit_amount": amount_cents,
                            "product_data": {"name": product},
                        },
                    }
                ],
                "success_url": success_url,
                "cancel_url": cancel_url,
                "client_reference_id": str(user_id),
                "metadata": metadata,
            }
        )
    except stripe.StripeError as exc:
        logger.error(
            "stripe refused a checkout session: %s (status %s): %s",
            type(exc).__name__, exc.http_status, exc.user_message,
        )  # fmt: skip
        raise PaymentProviderError() from exc
    finally:
        await http_client.close_async()  # type: ignore[no-untyped-call]
    if not session.id or not session.url:
        raise PaymentProviderError("The payment provider answered a session without a URL")
    return CheckoutSession(session_id=session.id, url=session.url)


def verify_event(settings: Settings, payload: bytes, signature: str | None) -> VerifiedEvent:
    """The event of a webhook delivery, if Stripe signed exactly this body with the webhook secret within
    the last 5 minutes (`stripe.Webhook.construct_event`); `InvalidSignature` (400) otherwise."""
    import stripe  # at the first payment (see the module's docstring)

    try:
        stripe.Webhook.construct_event(
            payload,
            signature,
            _secret(settings.stripe_webhook_secret),
            tolerance=SIGNATURE_TOLERANCE_S,
            api_key=_secret(settings.stripe_secret_key),
        )
        event = orjson.loads(payload)
        return VerifiedEvent(
            event_id=str(event["id"]), type=str(event["type"]), object=dict(event["data"]["object"])
        )
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(str(exc.user_message or "The webhook signature is not valid")) from exc
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidSignature("The webhook body is not a Stripe event") from exc
