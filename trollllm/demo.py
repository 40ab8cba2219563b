"""Demo mode (`trollllm serve --demo`): the whole flow with no internet and no provider account.

A mock provider (the one the tests use) runs in process on loopback; an admin, a user on the dev plan with
credits and a key, current Claude and OpenAI models at their public list prices (long-context tiers, web
search, output limits Claude Code needs) and factory keys pointing at the mock are seeded (idempotently: a
second start reuses them and re-points the keys at the mock's new port); ready-to-paste `curl`, Python SDK,
Claude Code and Codex snippets are printed.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy import select

from trollllm.accounts.apikeys import reveal_api_key
from trollllm.accounts.service import create_user, ensure_admin, find_user
from trollllm.accounts.tables import User
from trollllm.app import create_app
from trollllm.db import transaction
from trollllm.mockupstream import MockUpstream
from trollllm.plans.service import change_plan, find_plan
from trollllm.pricing.schemas import NewModel
from trollllm.pricing.service import create_model
from trollllm.pricing.tables import LlmModel
from trollllm.settings import Settings
from trollllm.state import AppState
from trollllm.upstream.schemas import NewFactoryKey
from trollllm.upstream.service import create_factory_key
from trollllm.upstream.tables import FactoryKey

DEMO_ADMIN = "admin"
DEMO_USER = "demo"
_SONNET_LONG_CONTEXT = {"thresholdTokens": 200_000, "inputPricePerMTok": "6", "outputPricePerMTok": "22.5",
                        "cacheWritePricePerMTok": "7.5", "cacheHitPricePerMTok": "0.6"}  # fmt: skip
_HAIKU_LONG_CONTEXT = {"thresholdTokens": 100_000, "inputPricePerMTok": "0.5", "outputPricePerMTok": "2.5",
                       "cacheWritePricePerMTok": "0.625", "cacheHitPricePerMTok": "0.05"}  # fmt: skip
DEMO_MODELS: tuple[dict[str, object], ...] = (
    # Anthropic list prices per MTok: input, output, 5-minute cache write, cache hit; web search $10 / 1,000.
    # Claude Code's defaults first (Opus 5.5, and Haiku 5.5 for its quick calls).
    {"modelId": "claude-opus-5-5", "provider": "anthropic", "displayName": "Claude Opus 5.5",
     "inputPricePerMTok": "4", "outputPricePerMTok": "20", "cacheWritePricePerMTok": "5",
     "cacheHitPricePerMTok": "0.2", "maxOutputTokens": 128_000, "webSearchPricePerKCalls": "10"},
    {"modelId": "claude-sonnet-5-5", "provider": "anthropic", "displayName": "Claude Sonnet 5.5",
     "inputPricePerMTok": "2", "outputPricePerMTok": "10", "cacheWritePricePerMTok": "2.5",
     "cacheHitPricePerMTok": "0.1", "maxOutputTokens": 128_000, "webSearchPricePerKCalls": "10"},
    {"modelId": "claude-haiku-5-5", "provider": "anthropic", "displayName": "Claude Haiku 5.5",
     "inputPricePerMTok": "0.1", "outputPricePerMTok": "0.5", "cacheWritePricePerMTok": "0.125",
     "cacheHitPricePerMTok": "0.01", "maxOutputTokens": 128_000, "longContext": _HAIKU_LONG_CONTEXT,
     "webSearchPricePerKCalls": "10"},
    {"modelId": "claude-sonnet-4-5", "provider": "anthropic", "displayName": "Claude Sonnet 4.5",
     "inputPricePerMTok": "3", "outputPricePerMTok": "15", "cacheWritePricePerMTok": "3.75",
     "cacheHitPricePerMTok": "0.3", "maxOutputTokens": 64_000, "longContext": _SONNET_LONG_CONTEXT,
     "webSearchPricePerKCalls": "10"},
    {"modelId": "claude-opus-4-1", "provider": "anthropic", "displayName": "Claude Opus 4.1",
     "inputPricePerMTok": "15", "outputPricePerMTok": "75", "cacheWritePricePerMTok": "18.75",
     "cacheHitPricePerMTok": "1.5", "maxOutputTokens": 32_000, "webSearchPricePerKCalls": "10"},
    {"modelId": "claude-haiku-4-5", "provider": "anthropic", "displayName": "Claude Haiku 4.5",
     "inputPricePerMTok": "1", "outputPricePerMTok": "5", "cacheWritePricePerMTok": "1.25",
     "cacheHitPricePerMTok": "0.1", "maxOutputTokens": 64_000, "webSearchPricePerKCalls": "10"},
    # OpenAI list prices per MTok: input, output, cached input; web search per 1,000 calls.
    {"modelId": "gpt-5", "provider": "openai", "inputPricePerMTok": "1.25", "outputPricePerMTok": "10",
     "cacheHitPricePerMTok": "0.125", "maxOutputTokens": 128_000, "webSearchPricePerKCalls": "10"},
    {"modelId": "gpt-5-mini", "provider": "openai", "inputPricePerMTok": "0.25", "outputPricePerMTok": "2",
     "cacheHitPricePerMTok": "0.025", "maxOutputTokens": 128_000, "webSearchPricePerKCalls": "10"},
    {"modelId": "gpt-4.1", "provider": "openai", "inputPricePerMTok": "2", "outputPricePerMTok": "8",
     "cacheHitPricePerMTok": "0.5", "maxOutputTokens": 32_768, "webSearchPricePerKCalls": "25"},
    {"modelId": "gpt-4o-mini", "provider": "openai", "inputPricePerMTok": "0.15", "outputPricePerMTok": "0.6",
     "cacheHitPricePerMTok": "0.075", "maxOutputTokens": 16_384, "webSearchPricePerKCalls": "25"},
)  # fmt: skip
"""The demo's model rows (admin API bodies; `upstreamModel` is the id)."""


@dataclass(frozen=True, slots=True)
class DemoAccounts:
    """What the demo prints: the admin's password and the user's key."""

    admin_password: str
    user_password: str
    user_key: str


def create_demo_app(settings: Settings) -> FastAPI:
    """The gateway app with a mock provider started and demo data seeded in its lifespan."""
    app = create_app(settings)
    gateway_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def demo_lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with MockUpstream() as mock, gateway_lifespan(app):
            state: AppState = app.state.trollllm
            accounts = await seed_demo(state, mock.url)
            print(demo_instructions(settings, accounts), flush=True)
            yield

    app.router.lifespan_context = demo_lifespan
    return app


async def seed_demo(state: AppState, mock_url: str) -> DemoAccounts:
    """Seed (or refresh) the demo admin, user, models and factory keys; returns the credentials to print."""
    admin_password = secrets.token_urlsafe(12)
    await ensure_admin(state, DEMO_ADMIN, admin_password)
    user_password = secrets.token_urlsafe(12)
    async with state.sessions() as session:
        existing = await find_user(session, DEMO_USER)
    if existing is None:
        await create_user(state, DEMO_USER, user_password)
    password_hash = state.passwords.hash(user_password)
    async with transaction(state.sessions) as session:
        user = await session.scalar(select(User).where(User.username == DEMO_USER).with_for_update())
        dev = await find_plan(session, "dev")
        assert user is not None and dev is not None
        user.password_hash = password_hash
        if user.plan != "dev":
            await change_plan(session, state, user, dev, DEMO_ADMIN)
        for fields in DEMO_MODELS:
            if await session.get(LlmModel, fields["modelId"]) is None:
                body = NewModel.model_validate({**fields, "upstreamModel": fields["modelId"]})
                await create_model(session, state, DEMO_ADMIN, body)
        for provider in ("openai", "anthropic"):
            name = f"demo-mock-{provider}"
            key = await session.scalar(select(FactoryKey).where(FactoryKey.name == name))
            if key is None:
                body_key = NewFactoryKey.model_validate(
                    {"name": name, "provider": provider, "baseUrl": mock_url, "apiKey": "mock-upstream-key"}
                )
                await create_factory_key(session, state, DEMO_ADMIN, body_key)
            else:
                key.base_url = mock_url
                key.status = "healthy"
    await state.invalidation.publish("models")
    await state.invalidation.publish("upstream")
    async with state.sessions() as session:
        user = await find_user(session, DEMO_USER)
        assert user is not None
        user_key = await reveal_api_key(session, state, user)
    return DemoAccounts(admin_password=admin_password, user_password=user_password, user_key=user_key)


def demo_instructions(settings: Settings, accounts: DemoAccounts) -> str:
    """The banner printed at demo start: logins and ready-to-paste snippets."""
    base = f"http://{settings.host}:{settings.port}"
    key = accounts.user_key
    return f"""
================ TrollLLM demo ================
Mock provider running in process; nothing leaves this machine.
Admin:  {DEMO_ADMIN} / {accounts.admin_password}    User: {DEMO_USER} / {accounts.user_password}
User API key: {key}

curl (streamed):
  curl -N {base}/v1/chat/completions -H 'Authorization: Bearer {key}' \\
    -H 'content-type: application/json' \\
    -d '{{"model": "gpt-4o-mini", "stream": true, "messages": [{{"role": "user", "content": "Hello!"}}]}}'

Python (pip install openai):
  from openai import OpenAI
  client = OpenAI(base_url="{base}/v1", api_key="{key}")
  reply = client.chat.completions.with_raw_response.create(
      model="gpt-4o-mini", messages=[{{"role": "user", "content": "Hello!"}}])
  print(reply.parse().choices[0].message.content, "cost $" + reply.headers["x-trollllm-cost-usd"])

Claude Code (npm install -g @anthropic-ai/claude-code), in the shell that runs `claude`:
  export ANTHROPIC_BASE_URL={base}
  export ANTHROPIC_API_KEY={key}

Codex CLI (npm install -g @openai/codex), in ~/.codex/config.toml:
  [model_providers.trollllm]
  name = "TrollLLM"
  base_url = "{base}/v1"
  env_key = "TROLLLLM_API_KEY"
  wire_api = "responses"
then: TROLLLLM_API_KEY={key} codex -c model_provider=trollllm -m gpt-5

Models: {", ".join(str(fields["modelId"]) for fields in DEMO_MODELS)}.
Dashboard: {base}/login as {DEMO_USER} / {accounts.user_password} (admin pages: {DEMO_ADMIN})
API docs: {base}/docs
===============================================
"""
