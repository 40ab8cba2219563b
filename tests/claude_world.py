"""Model rows for the Claude Code tests: a Sonnet-like row with a long-context tier and a web search price,
and the exact cost of a mock answer at those prices."""

from __future__ import annotations

from typing import Any

from proxy_world import World

from trollllm.mockupstream import count_input_tokens
from trollllm.mockupstream.hidden_billing import anthropic_hidden_tokens
from trollllm.money import (
    LongContextTier,
    Money,
    Prices,
    TokenPrices,
    TokenUsage,
    cost_of,
    parse_price_per_mtok,
)

CLAUDE_MODEL = "claude-sonnet-test"
THRESHOLD = 1000
"""The long-context threshold of `CLAUDE_MODEL`, low so that the mock's cache tokens pass it."""
BASE_USD = {"inputPricePerMTok": 3, "outputPricePerMTok": 15, "cacheWritePricePerMTok": "3.75",
            "cacheHitPricePerMTok": "0.3"}  # fmt: skip
TIER_USD = {"thresholdTokens": THRESHOLD, "inputPricePerMTok": 6, "outputPricePerMTok": "22.5",
            "cacheWritePricePerMTok": "7.5", "cacheHitPricePerMTok": "0.6"}  # fmt: skip
SEARCH_USD = 10  # per 1,000 searches
PRICES = Prices(
    parse_price_per_mtok(3),
    parse_price_per_mtok(15),
    parse_price_per_mtok("3.75"),
    parse_price_per_mtok("0.3"),
    long_context=LongContextTier(
        THRESHOLD,
        TokenPrices(
            parse_price_per_mtok(6),
            parse_price_per_mtok("22.5"),
            parse_price_per_mtok("7.5"),
            parse_price_per_mtok("0.6"),
        ),
    ),
    web_search_per_kcalls=parse_price_per_mtok(SEARCH_USD),
)
DEV_GRANT = Money.from_usd(225)


async def add_claude_model(world: World, model_id: str = CLAUDE_MODEL, **fields: Any) -> None:
    """An Anthropic row with the long-context tier and web search priced (unless `fields` say otherwise)."""
    body: dict[str, Any] = {
        "modelId": model_id,
        "provider": "anthropic",
        "upstreamModel": f"{model_id}-upstream",
        "maxOutputTokens": 64000,
        **BASE_USD,
        "longContext": TIER_USD,
        "webSearchPricePerKCalls": SEARCH_USD,
        **fields,
    }
    await world.admin_call("POST", "/api/admin/models", json=body)


def mock_cost(
    sent: dict[str, Any],
    output: int,
    *,
    write: int = 0,
    hit: int = 0,
    searches: int = 0,
    prices: Prices = PRICES,
) -> Money:
    """What the mock's answer to `sent` (the body it received) costs at `prices`: its words and what the
    provider adds to them (Anthropic's tool-use system prompt)."""
    input_tokens = count_input_tokens(sent) + anthropic_hidden_tokens(sent)
    usage = TokenUsage(input_tokens, output, write, hit, web_search_calls=searches)
    return cost_of(usage, prices)


async def credits(world: World) -> Money:
    """The user's available credits."""
    me = (await world.gateway.client.get("/api/user/me", headers=world.user.auth)).json()
    return Money.from_usd(me["credits"])


async def logged_cost(world: World, request_id: str) -> Money:
    """The cost in the request log of one of the user's requests."""
    response = await world.gateway.client.get(f"/api/user/requests/{request_id}", headers=world.user.auth)
    assert response.status_code == 200, response.text
    return Money.from_usd(response.json()["creditsCost"])
