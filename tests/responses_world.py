"""What the Responses tests share: the mock's exact usage for a Responses body, and the request log."""

from __future__ import annotations

from typing import Any

from proxy_world import PRICES as PROXY_PRICES
from proxy_world import World
from sqlalchemy import select

from trollllm.mockupstream import DEFAULT_REPLY_TOKENS, count_input_tokens
from trollllm.mockupstream.responses_format import chat_view
from trollllm.money import Money, Prices, TokenUsage, cost_of, parse_price_per_mtok
from trollllm.usage.tables import RequestLog

PRICES = Prices(
    parse_price_per_mtok(5),
    parse_price_per_mtok(25),
    parse_price_per_mtok("6.25"),
    parse_price_per_mtok("0.5"),
)
DEV_GRANT = Money.from_usd(225)


def input_tokens(body: dict[str, Any]) -> int:
    """The uncached input tokens the mock reports for a Responses body (as the upstream got it)."""
    return count_input_tokens(chat_view(body))


def expected_cost(body: dict[str, Any], output: int = DEFAULT_REPLY_TOKENS, hit: int = 0) -> Money:
    """The cost of a Responses request the mock answers with `output` tokens and `hit` cached ones."""
    return cost_of(TokenUsage(input_tokens(body), output, cache_hit_tokens=hit), PRICES)


async def credits(world: World) -> Money:
    """The user's credits now."""
    response = await world.gateway.client.get("/api/user/me", headers=world.user.auth)
    return Money.from_usd(response.json()["credits"])


async def log_of(world: World, request_id: str) -> RequestLog:
    """The request log row of a request (settled before its answer ended)."""
    async with world.state.sessions() as session:
        row = await session.scalar(select(RequestLog).where(RequestLog.request_id == request_id))
    assert row is not None, "the request was not logged"
    return row


CHAT_MODEL = "groq-test"
"""A model of an OpenAI-format provider row without a Responses API (the chat completions route)."""


async def add_chat_model(world: World) -> None:
    """`CHAT_MODEL` on the `groq` provider row, with one factory key on the mock."""
    await world.admin_call(
        "POST",
        "/api/admin/models",
        json={
            "modelId": CHAT_MODEL,
            "provider": "groq",
            "upstreamModel": "groq-up",
            "maxOutputTokens": 4096,
            **PROXY_PRICES,
        },
    )
    await world.admin_call(
        "POST",
        "/api/admin/factory-keys",
        json={"name": "groq-1", "provider": "groq", "baseUrl": world.mock.url, "apiKey": "fk-groq-one"},
    )
