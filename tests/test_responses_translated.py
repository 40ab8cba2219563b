"""`/v1/responses` on the two translated routes with the official OpenAI SDK (SPEC §6): a model of a
chat-completions provider and an Anthropic model answer as Responses, whole and streamed, billed exactly."""

from __future__ import annotations

from typing import Any

import pytest
from proxy_world import ANTHROPIC_MODEL, PRICES, World
from responses_world import CHAT_MODEL, DEV_GRANT, add_chat_model, credits

from trollllm.mockupstream import DEFAULT_REPLY_TOKENS, count_input_tokens, reply_text
from trollllm.mockupstream.hidden_billing import anthropic_hidden_tokens
from trollllm.money import Money, Prices, TokenUsage, cost_of, parse_price_per_mtok

ROUTES = {"chat": (CHAT_MODEL, "/v1/chat/completions"), "messages": (ANTHROPIC_MODEL, "/v1/messages")}
MODEL_PRICES = Prices(*(parse_price_per_mtok(PRICES[name]) for name in PRICES))
HELLO = "Say hello through the translation please"


@pytest.fixture(params=sorted(ROUTES))
async def route(request: pytest.FixtureRequest, world: World) -> tuple[str, str]:
    model, path = ROUTES[request.param]
    if model == CHAT_MODEL:
        await add_chat_model(world)
    return model, path


def cost_of_sent(world: World, path: str, output: int = DEFAULT_REPLY_TOKENS) -> Money:
    sent = world.mock.requests[-1]
    assert sent.path == path
    hidden = anthropic_hidden_tokens(sent.body) if path == "/v1/messages" else 0  # the tool-use prompt
    return cost_of(TokenUsage(count_input_tokens(sent.body) + hidden, output), MODEL_PRICES)


async def test_a_translated_response_is_answered_and_charged_exactly(
    world: World, route: tuple[str, str]
) -> None:
    model, path = route
    async with world.openai() as client:
        raw = await client.responses.with_raw_response.create(
            model=model, input=HELLO, instructions="Be brief"
        )
    response = raw.parse()
    cost = cost_of_sent(world, path)
    assert response.output_text == reply_text(DEFAULT_REPLY_TOKENS)
    assert response.model == model and response.id.startswith("resp_")
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost
    assert await credits(world) == DEV_GRANT - cost


async def test_a_translated_stream_ends_with_its_cost_beside_the_usage(
    world: World, route: tuple[str, str]
) -> None:
    model, path = route
    async with world.openai() as client, client.responses.stream(model=model, input=HELLO) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert final.output_text == reply_text(DEFAULT_REPLY_TOKENS)
    cost = cost_of_sent(world, path)
    assert final.model_extra is not None and Money.from_usd(final.model_extra["cost"]) == cost
    assert await credits(world) == DEV_GRANT - cost


async def test_a_translated_tool_round_trip_continues_by_previous_response_id(
    world: World, route: tuple[str, str]
) -> None:
    model, path = route
    tools: Any = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": False}]
    async with world.openai() as client:
        first = await client.responses.create(
            model=model, input=f"[mock tool_calls=1 reply_tokens=0] {HELLO}", tools=tools
        )
        call = first.output[-1]
        assert call.type == "function_call" and call.name == "lookup"
        output = {"type": "function_call_output", "call_id": call.call_id, "output": "the answer is 42"}
        raw = await client.responses.with_raw_response.create(
            model=model, input=[output], previous_response_id=first.id, tools=tools
        )
        stored = await client.responses.retrieve(raw.parse().id)
    second = raw.parse()
    assert second.output_text == reply_text(DEFAULT_REPLY_TOKENS)
    assert "42" in str(world.mock.requests[-1].body)  # the whole conversation went upstream
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost_of_sent(world, path)
    assert stored.output_text == second.output_text and stored.previous_response_id == first.id


async def test_a_strict_function_tool_reaches_the_upstream_strict_on_both_translated_routes(
    world: World, route: tuple[str, str]
) -> None:
    model, path = route
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    schema["additionalProperties"] = False
    tools: Any = [{"type": "function", "name": "lookup", "parameters": schema, "strict": True}]
    async with world.openai() as client:
        raw = await client.responses.with_raw_response.create(
            model=model, input=f"[mock tool_calls=1 reply_tokens=0] {HELLO}", tools=tools
        )
    response = raw.parse()
    call = response.output[-1]
    assert call.type == "function_call" and call.name == "lookup"
    (sent,) = world.mock.requests[-1].body["tools"]
    assert (sent["strict"] if path == "/v1/messages" else sent["function"]["strict"]) is True
    assert response.usage is not None  # the call's arguments are its output
    cost = cost_of_sent(world, path, output=response.usage.output_tokens)
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost
