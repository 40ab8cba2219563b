"""Any model from either API (SPEC §6): the official SDKs call a model of the other format, stream and
not, with tools; the answers parse cleanly and are billed exactly at the model's own prices."""

from __future__ import annotations

import json
from typing import Any

from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World

from trollllm.mockupstream import DEFAULT_REPLY_TOKENS, TOOL_CALL_TOKENS, count_input_tokens, reply_text
from trollllm.mockupstream.hidden_billing import anthropic_hidden_tokens, openai_hidden_tokens
from trollllm.money import Money, Prices, TokenUsage, cost_of, parse_price_per_mtok

PRICES = Prices(
    parse_price_per_mtok(5),
    parse_price_per_mtok(25),
    parse_price_per_mtok("6.25"),
    parse_price_per_mtok("0.5"),
)
DEV_GRANT = Money.from_usd(225)
HELLO = [{"role": "user", "content": "Say hello to the test suite please"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def upstream_cost(world: World, output: int, hit: int = 0, write: int = 0) -> Money:
    """The cost of the last upstream call, from the mock's deterministic count of what it received."""
    request = world.mock.requests[-1]
    sent = request.body
    assert sent is not None
    # What the mock bills beyond the words: Anthropic's tool-use system prompt, as Anthropic does.
    hidden = (
        anthropic_hidden_tokens(sent) if request.path.endswith("/messages") else openai_hidden_tokens(sent)
    )
    usage = TokenUsage(
        count_input_tokens(sent) + hidden, output, cache_write_tokens=write, cache_hit_tokens=hit
    )
    return cost_of(usage, PRICES)


async def credits(world: World) -> Money:
    response = await world.gateway.client.get("/api/user/me", headers=world.user.auth)
    body: dict[str, Any] = response.json()
    return Money.from_usd(body["credits"])


async def test_openai_sdk_calls_an_anthropic_model_and_is_billed_exactly(world: World) -> None:
    async with world.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=ANTHROPIC_MODEL, messages=[{"role": "system", "content": "Be brief"}, *HELLO]
        )
    completion = raw.parse()
    sent = world.mock.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.body is not None and sent.body["system"] == "Be brief"
    assert sent.body["model"] == f"{ANTHROPIC_MODEL}-upstream" and sent.body["max_tokens"] == 4096
    assert completion.model == ANTHROPIC_MODEL
    assert completion.choices[0].message.content == reply_text(DEFAULT_REPLY_TOKENS)
    assert completion.choices[0].finish_reason == "stop"
    cost = upstream_cost(world, DEFAULT_REPLY_TOKENS)
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost
    assert await credits(world) == DEV_GRANT - cost


async def test_openai_sdk_gets_parallel_tool_calls_from_an_anthropic_model(world: World) -> None:
    messages = [{"role": "user", "content": "Weather in Paris and Rome? [mock tool_calls=2]"}]
    async with world.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=ANTHROPIC_MODEL, messages=messages, tools=[WEATHER], tool_choice="required"
        )
    completion = raw.parse()
    sent = world.mock.requests[-1].body
    assert sent is not None
    assert sent["tools"] == [WEATHER_TOOL] and sent["tool_choice"] == {"type": "any"}
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name) for c in calls] == [
        ("toolu_mock_0", "get_weather"),
        ("toolu_mock_1", "get_weather"),
    ]
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"index": 0, "tool": "get_weather"},
        {"index": 1, "tool": "get_weather"},
    ]
    cost = upstream_cost(world, DEFAULT_REPLY_TOKENS + 2 * TOOL_CALL_TOKENS)
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost
    assert await credits(world) == DEV_GRANT - cost


async def test_openai_sdk_streams_tool_call_deltas_from_an_anthropic_model(world: World) -> None:
    messages = [{"role": "user", "content": "Weather in Paris and Rome? [mock tool_calls=2]"}]
    async with world.openai() as client:
        stream = await client.chat.completions.create(
            model=ANTHROPIC_MODEL,
            messages=messages,
            tools=[WEATHER],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    arguments: dict[int, str] = {}
    names: dict[int, str] = {}
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            arguments[call.index] = arguments.get(call.index, "") + (call.function.arguments or "")
            if call.function.name:
                names[call.index] = call.function.name
    assert text == reply_text(DEFAULT_REPLY_TOKENS)
    assert names == {0: "get_weather", 1: "get_weather"}
    assert {i: json.loads(a) for i, a in arguments.items()} == {
        0: {"index": 0, "tool": "get_weather"},
        1: {"index": 1, "tool": "get_weather"},
    }
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert all(chunk.model == ANTHROPIC_MODEL for chunk in chunks)
    output = DEFAULT_REPLY_TOKENS + 2 * TOOL_CALL_TOKENS
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == output and not chunks[-1].choices
    cost = upstream_cost(world, output)
    assert Money.from_usd((chunks[-1].model_extra or {})["cost"]) == cost
    assert await credits(world) == DEV_GRANT - cost


async def test_openai_stream_from_an_anthropic_model_has_no_usage_chunk_unless_asked(world: World) -> None:
    async with world.openai() as client:
        stream = await client.chat.completions.create(model=ANTHROPIC_MODEL, messages=HELLO, stream=True)
        chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)
    assert await credits(world) == DEV_GRANT - upstream_cost(world, DEFAULT_REPLY_TOKENS)


async def test_openai_tool_results_reach_an_anthropic_model_as_tool_result_blocks(world: World) -> None:
    call = {
        "id": "toolu_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny and warm"},
    ]
    async with world.openai() as client:
        completion = await client.chat.completions.create(
            model=ANTHROPIC_MODEL, messages=messages, tools=[WEATHER]
        )
    sent = world.mock.requests[-1].body
    assert sent is not None
    assert sent["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny and warm"}],
        },
    ]
    assert completion.choices[0].message.content == reply_text(DEFAULT_REPLY_TOKENS)


async def test_openai_sdk_sees_anthropic_cache_tokens_and_pays_their_prices(world: World) -> None:
    messages = [{"role": "user", "content": "cached question [mock cached=300 cache_write=200]"}]
    async with world.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model=ANTHROPIC_MODEL, messages=messages)
    usage = raw.parse().usage
    sent = world.mock.requests[-1].body
    assert sent is not None and usage is not None
    assert usage.prompt_tokens == count_input_tokens(sent) + 500
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 300
    cost = upstream_cost(world, DEFAULT_REPLY_TOKENS, hit=300, write=200)
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost


async def test_anthropic_sdk_calls_an_openai_model_with_tools_and_is_billed_exactly(world: World) -> None:
    messages = [{"role": "user", "content": "Weather in Paris and Rome? [mock tool_calls=2]"}]
    async with world.anthropic() as client:
        raw = await client.messages.with_raw_response.create(
            model=OPENAI_MODEL,
            max_tokens=200,
            system="Be brief",
            messages=messages,
            tools=[WEATHER_TOOL],
            tool_choice={"type": "auto", "disable_parallel_tool_use": False},
        )
    message = await raw.parse()
    sent = world.mock.requests[-1]
    assert sent.path == "/v1/chat/completions" and sent.body is not None
    assert sent.body["messages"][0] == {"role": "system", "content": "Be brief"}
    assert sent.body["tools"] == [WEATHER] and sent.body["max_completion_tokens"] == 200
    assert message.model == OPENAI_MODEL and message.stop_reason == "tool_use"
    assert message.content[0].type == "text" and message.content[0].text == reply_text(DEFAULT_REPLY_TOKENS)
    tool_uses = [block for block in message.content if block.type == "tool_use"]
    assert [(b.id, b.name, b.input) for b in tool_uses] == [
        ("call_mock_0", "get_weather", {"index": 0, "tool": "get_weather"}),
        ("call_mock_1", "get_weather", {"index": 1, "tool": "get_weather"}),
    ]
    output = DEFAULT_REPLY_TOKENS + 2 * TOOL_CALL_TOKENS
    assert message.usage.output_tokens == output
    cost = upstream_cost(world, output)
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost
    assert await credits(world) == DEV_GRANT - cost


async def test_anthropic_sdk_streams_an_openai_model_with_tools(world: World) -> None:
    messages = [{"role": "user", "content": "Weather in Paris and Rome? [mock tool_calls=2 cached=100]"}]
    client = world.anthropic()
    async with (
        client,
        client.messages.stream(
            model=OPENAI_MODEL, max_tokens=200, messages=messages, tools=[WEATHER_TOOL]
        ) as stream,
    ):
        final = await stream.get_final_message()
    assert final.model == OPENAI_MODEL and final.stop_reason == "tool_use"
    assert final.content[0].type == "text" and final.content[0].text == reply_text(DEFAULT_REPLY_TOKENS)
    tool_uses = [block for block in final.content if block.type == "tool_use"]
    assert [(b.name, b.input) for b in tool_uses] == [
        ("get_weather", {"index": 0, "tool": "get_weather"}),
        ("get_weather", {"index": 1, "tool": "get_weather"}),
    ]
    sent = world.mock.requests[-1].body
    assert sent is not None and sent["stream_options"] == {"include_usage": True}
    output = DEFAULT_REPLY_TOKENS + 2 * TOOL_CALL_TOKENS
    assert final.usage.output_tokens == output
    assert final.usage.input_tokens == count_input_tokens(sent) and final.usage.cache_read_input_tokens == 100
    assert await credits(world) == DEV_GRANT - upstream_cost(world, output, hit=100)


async def test_anthropic_stream_from_an_openai_model_reports_its_cost_in_message_delta(world: World) -> None:
    body = {"model": OPENAI_MODEL, "max_tokens": 50, "messages": HELLO, "stream": True}
    response = await world.gateway.client.post(
        "/v1/messages", json=body, headers={"x-api-key": world.user.api_key}
    )
    events = [line for line in response.text.split("\n") if line.startswith("data: ")]
    payloads = [json.loads(line[6:]) for line in events]
    assert [p["type"] for p in payloads][:2] == ["message_start", "content_block_start"]
    assert [p["type"] for p in payloads][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    delta = payloads[-2]
    assert Money.from_usd(str(delta["cost"])) == upstream_cost(world, DEFAULT_REPLY_TOKENS)


async def test_an_upstream_error_reaches_the_openai_sdk_in_its_format_with_the_upstream_status(
    world: World,
) -> None:
    import openai

    messages = [{"role": "user", "content": "fail please [mock status=400]"}]
    async with world.openai() as client:
        try:
            await client.chat.completions.create(model=ANTHROPIC_MODEL, messages=messages)
        except openai.BadRequestError as exc:
            error = exc
        else:
            raise AssertionError("the upstream's 400 did not reach the client")
    assert error.status_code == 400
    assert error.body == {
        "message": "mock: status 400 requested",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_request_error",
    }
    assert await credits(world) == DEV_GRANT


async def test_an_upstream_error_reaches_the_anthropic_sdk_in_its_format_with_the_upstream_status(
    world: World,
) -> None:
    import anthropic

    messages = [{"role": "user", "content": "fail please [mock status=429]"}]
    async with world.anthropic() as client:
        try:
            await client.messages.create(model=OPENAI_MODEL, max_tokens=10, messages=messages)
        except anthropic.RateLimitError as exc:
            error = exc
        else:
            raise AssertionError("the upstream's 429 did not reach the client")
    assert error.body == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "The upstream provider is rate limiting the gateway (429); retry later.",
        },
    }
    assert await credits(world) == DEV_GRANT


async def test_a_field_the_other_format_cannot_express_is_refused_naming_it(world: World) -> None:
    import anthropic
    import openai

    async with world.openai() as client:
        try:
            await client.chat.completions.create(model=ANTHROPIC_MODEL, messages=HELLO, seed=7)
        except openai.BadRequestError as exc:
            assert exc.body is not None and exc.body["field"] == "seed"
        else:
            raise AssertionError("seed was not refused")
    async with world.anthropic() as client:
        try:
            await client.messages.create(
                model=OPENAI_MODEL, max_tokens=10, messages=HELLO, extra_body={"top_k": 5}
            )
        except anthropic.BadRequestError as exc:
            assert exc.body["error"]["field"] == "top_k"
        else:
            raise AssertionError("top_k was not refused")
    assert world.mock.request_count == 0
    assert await credits(world) == DEV_GRANT


async def test_models_list_is_the_same_on_both_endpoints_keys(world: World) -> None:
    async with world.anthropic() as client:
        models = [model.id async for model in client.models.list()]
    assert models == [ANTHROPIC_MODEL, OPENAI_MODEL]


async def test_a_malformed_translated_answer_is_a_502_in_the_callers_format_charged_nothing(
    world: World,
) -> None:
    body = {
        "model": OPENAI_MODEL,
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "x [mock bad_json=1]"}],
    }
    response = await world.gateway.client.post(
        "/v1/messages", json=body, headers={"x-api-key": world.user.api_key}
    )
    assert response.status_code == 502
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "upstream_error"
    assert await credits(world) == DEV_GRANT


async def test_an_unreadable_translated_stream_is_a_502_in_the_callers_format(world: World) -> None:
    messages = [{"role": "user", "content": "x [mock junk_stream=1]"}]
    body = {"model": ANTHROPIC_MODEL, "messages": messages, "stream": True}
    headers = {"Authorization": f"Bearer {world.user.api_key}"}
    response = await world.gateway.client.post("/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_unreadable"
    assert await credits(world) == DEV_GRANT
