"""Providers as data, end to end (issue 15) with the official SDKs: a provider an operator adds (DeepSeek)
serves a paid user at its model's prices; a Groq model goes upstream with the user's own Groq key (not
charged) or else with a Groq factory key (charged); a model's wire format is its provider row's, so the
Anthropic SDK calling a Groq model is translated, and a provider of the Anthropic format gets its headers.
"""

from __future__ import annotations

from typing import Any

from byok_helpers import (
    DEV_GRANT,
    HELLO,
    charges_and_holds,
    credits,
    log_row,
    point_provider_at,
    save_own_key,
)
from proxy_world import World

from trollllm.mockupstream import DEFAULT_REPLY_TOKENS, count_input_tokens
from trollllm.money import Money, Prices, TokenUsage, cost_of, parse_price_per_mtok

GROQ_MODEL = "llama-groq"
DEEPSEEK_MODEL = "deepseek-chat"
# Prices of their own, so a charge at the wrong model's prices cannot pass.
MODEL_PRICES = {"inputPricePerMTok": "0.27", "outputPricePerMTok": "1.1"}
PRICES = Prices(parse_price_per_mtok("0.27"), parse_price_per_mtok("1.1"), 0, 0)
GROQ_FACTORY_KEY = "gsk_factory" + "Grq1" * 8 + "f4c7"
OWN_GROQ_KEY = "gsk_" + "Own9" * 12 + "q7R3"
DEEPSEEK_FACTORY_KEY = "sk-deepseek-factory-" + "Ds2x" * 6 + "d5e8"


async def add_model(world: World, model_id: str, provider: str) -> None:
    """A model of `provider`, priced `MODEL_PRICES`, through the admin API."""
    body = {"modelId": model_id, "provider": provider, "upstreamModel": f"{model_id}-upstream",
            "maxOutputTokens": 4096, **MODEL_PRICES}  # fmt: skip
    await world.admin_call("POST", "/api/admin/models", json=body)


async def add_factory_key(world: World, provider: str, api_key: str, base_url: str) -> None:
    """A factory key of `provider` through the admin API."""
    body = {"name": f"{provider}-1", "provider": provider, "baseUrl": base_url, "apiKey": api_key}
    await world.admin_call("POST", "/api/admin/factory-keys", json=body)


async def with_groq(world: World) -> World:
    """A Groq model and a Groq factory key at the mock (Groq speaks the OpenAI format)."""
    await add_model(world, GROQ_MODEL, "groq")
    await add_factory_key(world, "groq", GROQ_FACTORY_KEY, world.mock.url + "/v1")
    return world


def expected_cost(body: dict[str, Any]) -> Money:
    return cost_of(TokenUsage(count_input_tokens(body), DEFAULT_REPLY_TOKENS), PRICES)


async def test_a_provider_the_operator_adds_serves_a_paid_users_openai_sdk_call_at_its_models_prices(
    any_world: World,
) -> None:
    deepseek = {"name": "deepseek", "displayName": "DeepSeek", "wireFormat": "openai",
                "baseUrl": any_world.mock.url + "/v1"}  # fmt: skip
    await any_world.admin_call("POST", "/api/admin/providers", json=deepseek)
    await add_model(any_world, DEEPSEEK_MODEL, "deepseek")
    await add_factory_key(any_world, "deepseek", DEEPSEEK_FACTORY_KEY, any_world.mock.url + "/v1")
    async with any_world.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model=DEEPSEEK_MODEL, messages=HELLO)
    assert raw.parse().choices[0].message.content
    upstream = any_world.mock.last_request
    assert (upstream.path, upstream.body["model"]) == ("/v1/chat/completions", "deepseek-chat-upstream")
    assert upstream.headers["authorization"] == f"Bearer {DEEPSEEK_FACTORY_KEY}"
    cost = expected_cost({"messages": HELLO})
    assert cost > Money.ZERO
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost
    assert await credits(any_world, any_world.user) == DEV_GRANT - cost
    row = await log_row(any_world, any_world.user, raw.headers["x-request-id"])
    assert row["isByok"] is False and Money.from_usd(row["creditsCost"]) == cost


async def test_a_groq_model_goes_upstream_with_the_users_own_groq_key_and_is_not_charged(
    any_world: World,
) -> None:
    await with_groq(any_world)
    await point_provider_at(any_world, "groq", any_world.mock.url + "/v1")
    await save_own_key(any_world, any_world.user, "groq", OWN_GROQ_KEY)
    async with any_world.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model=GROQ_MODEL, messages=HELLO)
    assert raw.parse().choices[0].message.content
    upstream = any_world.mock.last_request
    assert upstream.path == "/v1/chat/completions"
    assert upstream.headers["authorization"] == f"Bearer {OWN_GROQ_KEY}"
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == Money.ZERO
    assert await credits(any_world, any_world.user) == DEV_GRANT
    assert await charges_and_holds(any_world) == (0, 0)
    row = await log_row(any_world, any_world.user, raw.headers["x-request-id"])
    assert row["isByok"] is True and row["creditsCost"] == 0
    assert row["inputTokens"] == count_input_tokens({"messages": HELLO})


async def test_without_an_own_groq_key_the_groq_factory_key_serves_the_groq_model_and_it_is_charged(
    any_world: World,
) -> None:
    await with_groq(any_world)
    async with any_world.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model=GROQ_MODEL, messages=HELLO)
    upstream = any_world.mock.last_request
    assert upstream.path == "/v1/chat/completions"
    assert upstream.headers["authorization"] == f"Bearer {GROQ_FACTORY_KEY}"
    cost = expected_cost({"messages": HELLO})
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost
    assert await credits(any_world, any_world.user) == DEV_GRANT - cost
    assert (await log_row(any_world, any_world.user, raw.headers["x-request-id"]))["isByok"] is False


async def test_the_anthropic_sdk_calling_a_groq_model_is_translated_to_the_openai_format(
    world: World,
) -> None:
    await with_groq(world)
    async with world.anthropic() as client:
        raw = await client.messages.with_raw_response.create(model=GROQ_MODEL, max_tokens=100, messages=HELLO)
    message = await raw.parse()
    assert message.type == "message" and message.content[0].type == "text" and message.content[0].text
    upstream = world.mock.last_request
    assert (upstream.path, upstream.body["model"]) == ("/v1/chat/completions", "llama-groq-upstream")
    assert upstream.headers["authorization"] == f"Bearer {GROQ_FACTORY_KEY}"
    assert "x-api-key" not in upstream.headers
    usage = TokenUsage(message.usage.input_tokens, message.usage.output_tokens)
    cost = cost_of(usage, PRICES)
    assert cost > Money.ZERO
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost
    assert await credits(world, world.user) == DEV_GRANT - cost


async def test_a_provider_of_the_anthropic_format_gets_the_anthropic_call_and_headers(world: World) -> None:
    relay = {"name": "claude-relay", "wireFormat": "anthropic", "baseUrl": world.mock.url}
    await world.admin_call("POST", "/api/admin/providers", json=relay)
    await add_model(world, "claude-relayed", "claude-relay")
    await add_factory_key(world, "claude-relay", "relay-factory-key-" + "Rl4y" * 6, world.mock.url)
    async with world.openai() as client:
        completion = await client.chat.completions.create(model="claude-relayed", messages=HELLO)
    assert completion.choices[0].message.content
    upstream = world.mock.last_request
    assert (upstream.path, upstream.body["model"]) == ("/v1/messages", "claude-relayed-upstream")
    assert upstream.headers["x-api-key"] == "relay-factory-key-" + "Rl4y" * 6
    assert upstream.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in upstream.headers


async def test_a_providers_new_wire_format_applies_to_the_next_request(world: World) -> None:
    await with_groq(world)
    async with world.openai() as client:
        await client.chat.completions.create(model=GROQ_MODEL, messages=HELLO)
        assert world.mock.last_request.path == "/v1/chat/completions"
        await world.admin_call(
            "PUT", "/api/admin/providers/groq", json={"wireFormat": "anthropic", "baseUrl": world.mock.url}
        )
        completion = await client.chat.completions.create(model=GROQ_MODEL, messages=HELLO)
    assert completion.choices[0].message.content
    upstream = world.mock.last_request
    assert upstream.path == "/v1/messages"  # the factory key keeps its own base URL (an API root)
    assert upstream.headers["x-api-key"] == GROQ_FACTORY_KEY
