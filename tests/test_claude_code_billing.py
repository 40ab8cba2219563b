"""Every way Claude Code can spend is priced (issue 24, SPEC §6): the long-context tier, web search per use,
thinking as output, cache writes and hits; what nothing prices is refused before anything goes upstream.

Each test compares the user's charge with what the upstream's own report costs at the model row's prices
(the provider's list prices): the operator is never billed upstream for more than the user pays.
"""

from __future__ import annotations

from typing import Any

import orjson
from claude_world import (
    CLAUDE_MODEL,
    DEV_GRANT,
    PRICES,
    SEARCH_USD,
    THRESHOLD,
    add_claude_model,
    credits,
    logged_cost,
    mock_cost,
)
from helpers import register_user
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World

from trollllm.mockupstream import DEFAULT_REPLY_TOKENS
from trollllm.mockupstream.controls import DEFAULT_THINKING_TOKENS
from trollllm.money import Money, TokenUsage, ceil_div, cost_of
from trollllm.translate.translation import ANTHROPIC_TOOL_PROMPT_TOKENS

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}


async def _messages(world: World, body: dict[str, Any], key: str | None = None, **headers: str) -> Any:
    payload = {"model": CLAUDE_MODEL, "max_tokens": 100, **body}
    return await world.gateway.client.post(
        "/v1/messages",
        headers={"x-api-key": key or world.user.api_key, "anthropic-version": "2023-06-01",
                 "content-type": "application/json", **headers},
        content=orjson.dumps(payload),
    )  # fmt: skip


def _say(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# --- the long-context tier ----------------------------------------------------------------------------------


async def test_a_request_at_or_below_the_threshold_is_billed_at_the_base_prices(world: World) -> None:
    await add_claude_model(world)
    write = THRESHOLD - 200  # input + cache write stay under the threshold
    response = await _messages(world, {"messages": _say(f"hi [mock cache_write={write}]")})
    assert response.status_code == 200, response.text
    sent = world.mock.last_request.body
    expected = mock_cost(sent, DEFAULT_REPLY_TOKENS, write=write)
    base = cost_of(TokenUsage(0, DEFAULT_REPLY_TOKENS, write), PRICES)  # the base prices, not the tier's
    assert expected.nanos > base.nanos > 0
    assert Money.from_usd(response.headers["x-trollllm-cost-usd"]) == expected
    assert expected == cost_of(
        TokenUsage(response.json()["usage"]["input_tokens"], DEFAULT_REPLY_TOKENS, write),
        PRICES,
    )
    assert await credits(world) == DEV_GRANT - expected


async def test_a_request_past_the_threshold_is_billed_entirely_at_the_tier_prices(world: World) -> None:
    await add_claude_model(world)
    write, hit = THRESHOLD, 300  # with the input tokens, past the threshold
    response = await _messages(world, {"messages": _say(f"hi [mock cache_write={write} cached={hit}]")})
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    tier = PRICES.long_context
    assert tier is not None
    # input × $6 + output × $22.50 + write × $7.50 + hit × $0.60, per million, rounded up once.
    numerator = (
        usage["input_tokens"] * tier.prices.input_per_mtok
        + DEFAULT_REPLY_TOKENS * tier.prices.output_per_mtok
        + write * tier.prices.cache_write_per_mtok
        + hit * tier.prices.cache_hit_per_mtok
    )
    expected = Money(ceil_div(numerator, 1_000_000))
    assert expected == mock_cost(world.mock.last_request.body, DEFAULT_REPLY_TOKENS, write=write, hit=hit)
    assert Money.from_usd(response.headers["x-trollllm-cost-usd"]) == expected
    assert await credits(world) == DEV_GRANT - expected


async def test_the_hold_is_at_the_tier_prices_when_the_input_bound_can_pass_the_threshold(
    world: World,
) -> None:
    await add_claude_model(world)
    poor = await register_user(world.gateway, "poor")
    await world.admin_call("PATCH", "/api/admin/users/poor", json={"plan": "dev"})
    await world.admin_call(
        "POST",
        "/api/admin/users/poor/credits",
        json={"amountUsd": -224.99, "balance": "credits", "reason": "t"},
    )
    long_prompt = "word " * 1200  # its byte bound passes the threshold of 1,000 tokens
    body = {"model": CLAUDE_MODEL, "max_tokens": 1000, "messages": _say(long_prompt)}
    raw = orjson.dumps(body)
    response = await _messages(world, body, key=poor.api_key)
    assert response.status_code == 402, response.text
    tier = PRICES.long_context
    assert tier is not None
    bound = len(raw) + 64
    worst = max(tier.prices.input_per_mtok, tier.prices.cache_write_per_mtok, tier.prices.cache_hit_per_mtok)
    required = Money(ceil_div(bound * worst + 1000 * tier.prices.output_per_mtok, 1_000_000))
    assert Money.from_usd(response.json()["error"]["requiredUsd"]) == required


async def test_the_context_1m_beta_is_forwarded_to_a_model_with_a_long_context_tier(world: World) -> None:
    await add_claude_model(world)
    response = await _messages(world, {"messages": _say("hi")}, **{"anthropic-beta": "context-1m-2025-08-07"})
    assert response.status_code == 200, response.text
    assert world.mock.last_request.headers["anthropic-beta"] == "context-1m-2025-08-07"


async def test_the_context_1m_beta_is_refused_for_a_model_without_a_tier(world: World) -> None:
    await add_claude_model(world, "claude-plain", longContext=None)
    before = world.mock.request_count
    response = await _messages(
        world,
        {"model": "claude-plain", "messages": _say("hi")},
        **{"anthropic-beta": "context-1m-2025-08-07"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "context-1m-2025-08-07" in error["message"]
    assert world.mock.request_count == before


# --- web search, per use ------------------------------------------------------------------------------------


async def test_web_search_is_billed_per_search_the_upstream_reports(world: World) -> None:
    await add_claude_model(world)
    async with world.anthropic() as client:
        raw = await client.messages.with_raw_response.create(
            model=CLAUDE_MODEL, max_tokens=100, messages=_say("look it up [mock web_searches=2]"),
            tools=[WEB_SEARCH],
        )  # fmt: skip
    message = await raw.parse()
    assert (
        message.usage.server_tool_use is not None and message.usage.server_tool_use.web_search_requests == 2
    )
    expected = mock_cost(world.mock.last_request.body, DEFAULT_REPLY_TOKENS, searches=2)
    assert expected - mock_cost(world.mock.last_request.body, DEFAULT_REPLY_TOKENS) == Money.from_usd("0.02")
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == expected
    assert await credits(world) == DEV_GRANT - expected


async def test_web_search_in_a_stream_is_billed_per_search(world: World) -> None:
    await add_claude_model(world)
    async with world.anthropic() as client, client.messages.stream(
        model=CLAUDE_MODEL, max_tokens=100, messages=_say("look it up [mock web_searches=3]"),
        tools=[WEB_SEARCH],
    ) as stream:  # fmt: skip
        final = await stream.get_final_message()
    assert final.usage.server_tool_use is not None and final.usage.server_tool_use.web_search_requests == 3
    expected = mock_cost(world.mock.last_request.body, DEFAULT_REPLY_TOKENS, searches=3)
    assert await credits(world) == DEV_GRANT - expected


async def test_web_search_is_held_by_max_uses(world: World) -> None:
    await add_claude_model(world)
    poor = await register_user(world.gateway, "searcher")
    await world.admin_call("PATCH", "/api/admin/users/searcher", json={"plan": "dev"})
    await world.admin_call(
        "POST", "/api/admin/users/searcher/credits",
        json={"amountUsd": -224.99, "balance": "credits", "reason": "t"},
    )  # fmt: skip
    body = {
        "model": CLAUDE_MODEL,
        "max_tokens": 10,
        "messages": _say("hi"),
        "tools": [{**WEB_SEARCH, "max_uses": 5}],
    }
    response = await _messages(world, body, key=poor.api_key)
    assert response.status_code == 402, response.text
    worst = max(PRICES.input_per_mtok, PRICES.cache_write_per_mtok, PRICES.cache_hit_per_mtok)
    # The body's bytes, the margin, and Anthropic's tool-use system prompt (the request has tools).
    input_bound = len(orjson.dumps(body)) + 64 + ANTHROPIC_TOOL_PROMPT_TOKENS
    tokens = input_bound * worst + 10 * PRICES.output_per_mtok
    assert PRICES.web_search_per_kcalls == SEARCH_USD * 10**9
    searches = 5 * PRICES.web_search_per_kcalls * 1000  # 5 searches at $10 per 1,000: $0.05, × 10⁶
    required = Money(ceil_div(tokens + searches, 1_000_000))
    assert Money.from_usd(response.json()["error"]["requiredUsd"]) == required


async def test_openai_web_search_options_are_billed_one_search_per_request(world: World) -> None:
    await world.admin_call(
        "PUT", f"/api/admin/models/{OPENAI_MODEL}",
        json={"provider": "openai", "upstreamModel": f"{OPENAI_MODEL}-upstream", "maxOutputTokens": 4096,
              "inputPricePerMTok": 5, "outputPricePerMTok": 25, "cacheWritePricePerMTok": 6.25,
              "cacheHitPricePerMTok": 0.5, "webSearchPricePerKCalls": 25},
    )  # fmt: skip
    async with world.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=OPENAI_MODEL,
            messages=_say("search the web"),
            web_search_options={},  # type: ignore[arg-type]
        )
    from test_proxy_sdk import PRICES as OPENAI_PRICES

    tokens = cost_of(TokenUsage(raw.parse().usage.prompt_tokens, DEFAULT_REPLY_TOKENS), OPENAI_PRICES)  # type: ignore[union-attr]
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == tokens + Money.from_usd("0.025")


async def test_openai_service_tier_other_than_auto_or_default_is_refused_naming_it(world: World) -> None:
    before = world.mock.request_count
    response = await world.gateway.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {world.user.api_key}"},
        json={"model": OPENAI_MODEL, "messages": _say("hi"), "service_tier": "priority"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "service_tier" and "priority" in error["message"]
    assert world.mock.request_count == before
    ok = await world.gateway.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {world.user.api_key}"},
        json={"model": OPENAI_MODEL, "messages": _say("hi"), "service_tier": "default"},
    )
    assert ok.status_code == 200, ok.text


async def test_code_execution_is_refused_naming_the_tool(world: World) -> None:
    await add_claude_model(world)
    tool = {"type": "code_execution_20250825", "name": "code_execution"}
    response = await _messages(world, {"messages": _say("run it"), "tools": [tool]})
    assert response.status_code == 400
    assert "code_execution_20250825" in response.json()["error"]["message"]


async def test_web_fetch_is_forwarded_and_billed_by_tokens(world: World) -> None:
    await add_claude_model(world, "claude-nosearch", webSearchPricePerKCalls=None)
    tool = {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 2}
    response = await _messages(
        world, {"model": "claude-nosearch", "messages": _say("fetch"), "tools": [tool]}
    )
    assert response.status_code == 200, response.text
    assert world.mock.last_request.body["tools"] == [tool]
    expected = mock_cost(world.mock.last_request.body, DEFAULT_REPLY_TOKENS)
    assert Money.from_usd(response.headers["x-trollllm-cost-usd"]) == expected


async def test_a_one_hour_cache_write_is_refused_naming_cache_control(world: World) -> None:
    await add_claude_model(world)
    system = [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    response = await _messages(world, {"messages": _say("hi"), "system": system})
    assert response.status_code == 400
    assert "cache_control" in response.json()["error"]["message"]


# --- thinking, cache ----------------------------------------------------------------------------------------


THINKING_BETAS = ["interleaved-thinking-2025-05-14", "context-management-2025-06-27"]


async def test_a_thinking_stream_is_billed_exactly_thinking_as_output(world: World) -> None:
    await add_claude_model(world)
    async with world.anthropic() as client, client.beta.messages.stream(
        model=CLAUDE_MODEL, max_tokens=32000, betas=THINKING_BETAS,
        thinking={"type": "enabled", "budget_tokens": 31999},
        context_management={"edits": [{"type": "clear_tool_uses_20250919"}]},
        messages=_say("think first [mock thinking_tokens=40 cache_write=120 cached=30]"),
    ) as stream:  # fmt: skip
        thinking = "".join([e.delta.thinking async for e in stream if e.type == "content_block_delta"
                            and e.delta.type == "thinking_delta"])  # fmt: skip
        final = await stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert len(thinking.split()) == 40
    sent = world.mock.last_request.body
    assert sent["context_management"] and sent["thinking"]["budget_tokens"] == 31999
    assert world.mock.last_request.headers["anthropic-beta"] == ",".join(THINKING_BETAS)
    assert final.usage.output_tokens == 40 + DEFAULT_REPLY_TOKENS
    expected = mock_cost(sent, 40 + DEFAULT_REPLY_TOKENS, write=120, hit=30)
    assert await credits(world) == DEV_GRANT - expected


async def test_a_cut_thinking_stream_is_billed_for_the_input_and_what_was_delivered(world: World) -> None:
    await add_claude_model(world)
    # message_start, the thinking block's start, then 5 thinking deltas: cut there.
    body = {"stream": True, "thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048,
            "messages": _say("think [mock thinking_tokens=40 drop_after=7]")}  # fmt: skip
    response = await _messages(world, body)
    assert response.status_code == 200
    assert response.text.count("thinking_delta") == 5
    request_id = response.headers["x-request-id"]
    expected = mock_cost(world.mock.last_request.body, 5)
    assert await logged_cost(world, request_id) == expected
    assert await credits(world) == DEV_GRANT - expected


async def test_cache_writes_and_hits_are_billed_at_their_prices(world: World) -> None:
    await add_claude_model(world, "claude-cache", longContext=None)
    response = await _messages(
        world, {"model": "claude-cache", "messages": _say("hi [mock cache_write=500 cached=400]")}
    )
    assert response.status_code == 200, response.text
    sent = world.mock.last_request.body
    usage = TokenUsage(0, 0, 500, 400)
    assert cost_of(usage, PRICES) == Money.from_usd("0.00199500")  # 500 × $3.75 + 400 × $0.30, per million
    expected = mock_cost(sent, DEFAULT_REPLY_TOKENS, write=500, hit=400)
    assert Money.from_usd(response.headers["x-trollllm-cost-usd"]) == expected


async def test_the_default_thinking_tokens_of_the_mock_are_output(world: World) -> None:
    await add_claude_model(world)
    response = await _messages(
        world,
        {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048, "messages": _say("hi")},
    )
    assert response.status_code == 200, response.text
    output = DEFAULT_THINKING_TOKENS + DEFAULT_REPLY_TOKENS
    assert response.json()["usage"]["output_tokens"] == output
    expected = mock_cost(world.mock.last_request.body, output)
    assert Money.from_usd(response.headers["x-trollllm-cost-usd"]) == expected


async def test_the_plain_claude_row_still_refuses_web_search(world: World) -> None:
    response = await _messages(
        world, {"model": ANTHROPIC_MODEL, "messages": _say("hi"), "tools": [WEB_SEARCH]}
    )
    assert response.status_code == 400 and "web_search_20250305" in response.json()["error"]["message"]
