"""A local HTTP fake of the Stripe endpoints the gateway calls, and of Stripe's side of the webhooks.

- `POST /v1/checkout/sessions` (form-encoded, as the official library sends it, secret key as Bearer)
  answers a Checkout Session whose `url` is this fake's own payment page;
- `GET /pay/{id}` is that page: one "Pay" button; `POST /pay/{id}` marks the session paid, delivers the
  signed `checkout.session.completed` event to the gateway's webhook, and redirects to `success_url`;
- `event(…)`, `sign(…)` and `deliver(…)` build, sign (exactly as Stripe: `t=<unix>,v1=<hex HMAC-SHA256 of
  "t.body" with the webhook secret>`) and post any event, for the tests.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

SECRET_KEY = "sk_test_" + "f" * 24
WEBHOOK_SECRET = "whsec_" + "a" * 32


@dataclass
class FakeSession:
    """A Checkout Session as the fake keeps it."""

    id: str
    amount_total: int
    success_url: str
    cancel_url: str
    metadata: dict[str, str]
    client_reference_id: str
    payment_intent: str
    payment_status: str = "unpaid"


@dataclass
class StripeFake:
    """The fake's state: sessions created, requests seen, where to deliver webhooks."""

    webhook_url: str = ""
    sessions: dict[str, FakeSession] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/checkout/sessions", self._create_session)
        app.router.add_get("/pay/{id}", self._pay_page)
        app.router.add_post("/pay/{id}", self._pay)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _create_session(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
            body = {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
            return web.json_response(body, status=401)
        form = dict(await request.post())
        self.requests.append({k: str(v) for k, v in form.items()})
        session_id = "cs_test_" + secrets.token_hex(12)
        session = FakeSession(
            id=session_id,
            amount_total=int(str(form["line_items[0][price_data][unit_amount]"])),
            success_url=str(form["success_url"]),
            cancel_url=str(form["cancel_url"]),
            metadata={k[9:-1]: str(v) for k, v in form.items() if k.startswith("metadata[")},
            client_reference_id=str(form.get("client_reference_id", "")),
            payment_intent="pi_" + secrets.token_hex(12),
        )
        self.sessions[session_id] = session
        return web.json_response(self.session_object(session) | {"url": f"{self.url}/pay/{session_id}"})

    async def _pay_page(self, request: web.Request) -> web.Response:
        session = self.sessions[request.match_info["id"]]
        dollars = f"{session.amount_total / 100:.2f}"
        page = (
            "<!doctype html><html><head><title>Fake Checkout</title></head><body>"
            f"<h1>Pay ${dollars}</h1><form method='post'><button type='submit'>Pay ${dollars}</button></form>"
            f"<a href='{html.escape(session.cancel_url)}'>Cancel</a></body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    async def _pay(self, request: web.Request) -> web.Response:
        session = self.sessions[request.match_info["id"]]
        session.payment_status = "paid"
        response = await self.deliver(self.event("checkout.session.completed", self.session_object(session)))
        assert response.status_code == 200, response.text
        raise web.HTTPSeeOther(session.success_url)

    def session_object(self, session: FakeSession) -> dict[str, Any]:
        """The session as Stripe's API and events show it."""
        return {
            "id": session.id,
            "object": "checkout.session",
            "mode": "payment",
            "currency": "usd",
            "amount_total": session.amount_total,
            "payment_status": session.payment_status,
            "status": "complete" if session.payment_status == "paid" else "open",
            "payment_intent": session.payment_intent,
            "client_reference_id": session.client_reference_id,
            "metadata": session.metadata,
            "success_url": session.success_url,
            "cancel_url": session.cancel_url,
        }

    def paid(self, session_id: str) -> dict[str, Any]:
        """The `checkout.session.completed` event of a paid session."""
        session = self.sessions[session_id]
        session.payment_status = "paid"
        return self.event("checkout.session.completed", self.session_object(session))

    def refunded(self, session_id: str, amount_refunded_cents: int) -> dict[str, Any]:
        """A `charge.refunded` event (Stripe reports the running total refunded)."""
        session = self.sessions[session_id]
        charge = {
            "id": "ch_" + secrets.token_hex(8), "object": "charge", "amount": session.amount_total,
            "amount_refunded": amount_refunded_cents, "payment_intent": session.payment_intent,
            "refunded": amount_refunded_cents >= session.amount_total,
        }  # fmt: skip
        return self.event("charge.refunded", charge)

    def dispute_closed(self, session_id: str, status: str) -> dict[str, Any]:
        """A `charge.dispute.closed` event, `lost` or `won`."""
        session = self.sessions[session_id]
        dispute = {
            "id": "dp_" + secrets.token_hex(8), "object": "dispute", "amount": session.amount_total,
            "status": status, "payment_intent": session.payment_intent, "charge": "ch_x",
        }  # fmt: skip
        return self.event("charge.dispute.closed", dispute)

    @staticmethod
    def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        """A Stripe event envelope around `obj`."""
        return {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": int(time.time()),
            "type": kind,
            "livemode": False,
            "pending_webhooks": 1,
            "data": {"object": obj},
        }

    @staticmethod
    def sign(payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
        """The `Stripe-Signature` header Stripe sends for `payload`."""
        stamp = int(time.time()) if timestamp is None else timestamp
        digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
        return f"t={stamp},v1={digest}"

    async def deliver(
        self, event: dict[str, Any], *, url: str | None = None, signature: str | None = None
    ) -> httpx.Response:
        """POST an event to the gateway's webhook, signed as Stripe signs it (or with `signature`; "" sends
        no signature header)."""
        payload = json.dumps(event, indent=2).encode()  # Stripe's bodies are pretty-printed
        headers = {"content-type": "application/json"}
        if signature != "":
            headers["Stripe-Signature"] = signature or self.sign(payload)
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(url or self.webhook_url, content=payload, headers=headers)
