"""Helpers of the alert tests: a real SMTP server (aiosmtpd), a real webhook receiver on loopback, the
signature check a receiver does, and one alerts pass run at the test's clock."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import orjson
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from plan_helpers import free_port

from trollllm.alerts.delivery import deliver_due
from trollllm.alerts.job import channels_of, check_alerts
from trollllm.state import AppState


class Inbox:
    """What the SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.messages.append(([str(to) for to in envelope.rcpt_tos], message_from_bytes(content)))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    """A running SMTP server and its inbox."""

    url: str
    inbox: Inbox


@contextlib.contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    """aiosmtpd on a loopback port, in its own thread."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(f"smtp://127.0.0.1:{port}", inbox)
    finally:
        controller.stop()


@dataclass
class Delivery:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        result: dict[str, Any] = orjson.loads(self.body)
        return result


@dataclass
class WebhookReceiver:
    """A webhook endpoint on loopback: every request is kept; `hang` holds requests unanswered."""

    url: str
    received: list[Delivery] = field(default_factory=list)
    acknowledged: list[Delivery] = field(default_factory=list)
    hang: bool = False
    fail_next: int = 0  # answer this many requests with 503 first
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        delivery = Delivery(dict(request.headers), await request.read())
        self.received.append(delivery)
        self.arrived.set()
        if self.hang:
            await asyncio.Event().wait()  # until the sender goes away
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503, text="busy")
        self.acknowledged.append(delivery)
        return web.Response(status=200, text="ok")


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    """A real HTTP server on 127.0.0.1 taking POST /hook."""
    port = free_port()
    receiver = WebhookReceiver(f"http://127.0.0.1:{port}/hook")
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()


def signature_valid(secret: str, delivery: Delivery) -> bool:
    """What a receiver checks: `t=…,v1=…` is the HMAC-SHA256 of `t.body` under its secret."""
    parts = dict(item.split("=", 1) for item in delivery.headers["x-trollllm-signature"].split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + delivery.body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts["v1"])


async def run_alerts(state: AppState) -> int:
    """One alerts pass at the app's clock: announce the crossings, then send what is due; returns how
    many deliveries were made."""
    await check_alerts(state, state.clock.now())
    return await deliver_due(state.sessions, channels_of(state), state.clock.now())
