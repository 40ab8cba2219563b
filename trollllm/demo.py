"""Demo mode (`trollllm serve --demo`): the whole flow with no internet and no provider account.

A mock provider (the one the tests use) runs in process on loopback; an admin, a user on the dev plan with
credits and a key, two priced models (one per wire format) and factory keys pointing at the mock are seeded
(idempotently: a second start reuses them and re-points the keys at the mock's new port); ready-to-paste
`curl` and Python SDK snippets are printed.
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
DEMO_MODELS = (
    ("gpt-4o-mini", "openai", "0.15", "0.60"),
    ("claude-3-5-haiku", "anthropic", "0.80", "4.00"),
)


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
        for model_id, provider, input_price, output_price in DEMO_MODELS:
            if await session.get(LlmModel, model_id) is None:
                body = NewModel.model_validate(
                    {
                        "modelId": model_id,
                        "provider": provider,
                        "upstreamModel": model_id,
                        "inputPricePerMTok": input_price,
                        "outputPricePerMTok": output_price,
                        "maxOutputTokens": 4096,
                    }
                )
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

Anthropic format: POST {base}/v1/messages with model "claude-3-5-haiku".
History: POST {base}/api/auth/login as {DEMO_USER}, then GET {base}/api/user/request-history with the token.
API docs: {base}/docs
===============================================
"""
