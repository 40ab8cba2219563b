"""A running gateway (real uvicorn on loopback) wired to the mock upstream, with priced models, factory keys
and a paying user — the world the proxy tests and the official SDKs talk to."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import uvicorn
from conftest import AppHarness, make_settings
from fastapi import FastAPI
from helpers import Account, make_admin, register_user

from trollllm.app import create_app
from trollllm.mockupstream import MockUpstream
from trollllm.serving import server_options
from trollllm.settings import Settings
from trollllm.state import AppState

OPENAI_MODEL = "gpt-test"
ANTHROPIC_MODEL = "claude-test"
# $5 / $25 per MTok: 1,000 input + 500 output tokens cost exactly $0.0175 (SPEC §4).
PRICES = {"inputPricePerMTok": 5, "outputPricePerMTok": 25, "cacheWritePricePerMTok": 6.25,
          "cacheHitPricePerMTok": 0.5}  # fmt: skip


@dataclass
class World:
    """The gateway, its mock upstream, an admin and a user on the dev plan ($225)."""

    gateway: AppHarness
    base_url: str
    mock: MockUpstream
    admin: Account
    user: Account

    @property
    def state(self) -> AppState:
        """The running gateway's state."""
        return self.gateway.state

    def openai(self, api_key: str | None = None) -> openai.AsyncOpenAI:
        """The official OpenAI SDK pointed at the gateway."""
        return openai.AsyncOpenAI(
            base_url=self.base_url + "/v1", api_key=api_key or self.user.api_key, max_retries=0
        )

    def anthropic(self, api_key: str | None = None) -> anthropic.AsyncAnthropic:
        """The official Anthropic SDK pointed at the gateway."""
        return anthropic.AsyncAnthropic(
            base_url=self.base_url, api_key=api_key or self.user.api_key, max_retries=0
        )

    async def admin_call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An admin API call that must succeed."""
        response = await self.gateway.client.request(method, path, headers=self.admin.auth, **kwargs)
        assert response.status_code < 300, response.text
        return response


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve(
    settings: Settings, clock: Any, app_factory: Callable[..., FastAPI] | None = None
) -> AsyncIterator[tuple[AppHarness, str]]:
    """Run a gateway app under uvicorn on a loopback port; yields the harness and its base URL."""
    app = app_factory(settings) if app_factory else create_app(settings, clock=clock)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", **server_options())
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    base_url = f"http://127.0.0.1:{port}"
    client = httpx.AsyncClient(base_url=base_url, timeout=30)
    try:
        yield AppHarness(app, client), base_url
    finally:
        await client.aclose()
        server.should_exit = True
        await task


async def build_world(gateway: AppHarness, base_url: str, mock: MockUpstream) -> World:
    """Admin, models, factory keys and a dev-plan user, all through the admin API."""
    admin = await make_admin(gateway)
    world = World(gateway, base_url, mock, admin, admin)
    for model_id, provider in ((OPENAI_MODEL, "openai"), (ANTHROPIC_MODEL, "anthropic")):
        await world.admin_call(
            "POST",
            "/api/admin/models",
            json={
                "modelId": model_id,
                "provider": provider,
                "upstreamModel": f"{model_id}-upstream",
                "maxOutputTokens": 4096,
                **PRICES,
            },
        )
        await world.admin_call(
            "POST",
            "/api/admin/factory-keys",
            json={
                "name": f"{provider}-1",
                "provider": provider,
                "baseUrl": mock.url,
                "apiKey": f"fk-{provider}-one",
            },
        )
    world.user = await register_user(gateway, "alice")
    await world.admin_call("PATCH", "/api/admin/users/alice", json={"plan": "dev"})
    return world


@contextlib.asynccontextmanager
async def served_world(folder: Path, clock: Any, database_url: str) -> AsyncIterator[World]:
    """The proxy world: a gateway served on `database_url` (its data dir `folder`) with the mock upstream."""
    async with MockUpstream() as mock, serve(make_settings(folder, database_url), clock) as (gateway, url):
        yield await build_world(gateway, url, mock)
