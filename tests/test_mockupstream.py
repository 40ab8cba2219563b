"""The mock upstream, driven by the official OpenAI and Anthropic SDKs and by raw HTTP."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import orjson
import pytest

from trollllm.mockupstream import (
    DEFAULT_MODELS,
    DEFAULT_REPLY_TOKENS,
    TOOL_CALL_TOKENS,
    Controls,
    MockRequestError,
    MockUpstream,
    count_input_tokens,
    parse_controls,
    reply_text,
)

CLAUDE = "claude-sonnet-4-20250514"


@pytest.fixture
async def claude(mock: MockUpstream) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=mock.url, api_key="k", max_retries=0) as client:
        yield client


@pytest.fixture
async def raw(mock: MockUpstream) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=mock.url, timeout=5) as client:
        yield client


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def sse_data(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]


# -- pure functions -------------------------------------------------------------------


def test_count_input_tokens_counts_words_plus_four_per_message() -> None:
    body = {
        "system": [{"type": "text", "text": "be brief"}],
        "messages": [
            {"role": "user", "content": "one two three"},
            {"role": "assistant", "content": [{"type": "text", "text": "four five"}, {"type": "image"}]},
            {"role": "user", "content": [{"type": "tool_result", "content": "six"}]},
        ],
    }
    assert count_input_tokens(body) == (4 + 2) + (4 + 3) + (4 + 2) + (4 + 1)


def test_count_input_tokens_is_the_same_for_both_formats() -> None:
    openai_body = {"messages": [{"role": "system", "content": "be brief"}, *user("hi there")]}
    anthropic_body = {"system": "be brief", "messages": user("hi there")}
    assert count_input_tokens(openai_body) == count_input_tokens(anthropic_body) == 12


def test_parse_controls_reads_directives_of_the_last_user_message_and_headers() -> None:
    body = {
        "messages": [
            *user("[mock status=500]"),
            {"role": "assistant", "content": "ok"},
            *user("hi [mock reply_tokens=3 cached=10] and [mock hang=1]"),
        ]
    }
    controls = parse_controls(body, [("X-Mock-Delay-Ms", "20"), ("x-other", "1")])
    assert controls == Controls(reply_tokens=3, cached=10, hang=True, delay_ms=20)
    assert parse_controls(user_body("plain"), []) == Controls()


def user_body(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": user(text)}


@pytest.mark.parametrize("text", ["[mock bogus=1]", "[mock status=abc]", "[mock status=200]"])
def test_parse_controls_refuses_unknown_or_bad_values(text: str) -> None:
    with pytest.raises(MockRequestError):
        parse_controls(user_body(text), [])


# -- OpenAI ---------------------------------------------------------------------------


async def test_openai_completion(mock: MockUpstream, oai: openai.AsyncOpenAI) -> None:
    messages = [{"role": "system", "content": "You are terse."}, *user("Say hello to the world")]
    result = await oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert result.object == "chat.completion"
    assert result.model == "gpt-4o-mini"
    assert result.choices[0].message.role == "assistant"
    assert result.choices[0].message.content == reply_text(DEFAULT_REPLY_TOKENS)
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None
    assert result.usage.prompt_tokens == count_input_tokens({"messages": messages}) == 4 + 3 + 4 + 5
    assert result.usage.completion_tokens == DEFAULT_REPLY_TOKENS
    assert result.usage.total_tokens == result.usage.prompt_tokens + DEFAULT_REPLY_TOKENS
    assert result.usage.prompt_tokens_details is not None
    assert result.usage.prompt_tokens_details.cached_tokens == 0


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_openai_max_tokens_truncates(oai: openai.AsyncOpenAI, field: str) -> None:
    result = await oai.chat.completions.create(model="gpt-4o", messages=user("hi"), **{field: 5})
    assert result.choices[0].finish_reason == "length"
    assert result.choices[0].message.content == reply_text(5)
    assert result.usage is not None and result.usage.completion_tokens == 5


async def test_openai_cached_tokens_come_on_top_of_the_counted_input(oai: openai.AsyncOpenAI) -> None:
    messages = user("hello [mock cached=100 reply_tokens=20]")
    result = await oai.chat.completions.create(model="gpt-4o", messages=messages)
    assert result.usage is not None and result.usage.prompt_tokens_details is not None
    assert result.usage.prompt_tokens == count_input_tokens({"messages": messages}) + 100
    assert result.usage.prompt_tokens_details.cached_tokens == 100
    assert result.usage.completion_tokens == 20
    assert result.choices[0].message.content == reply_text(20)


async def test_openai_stream_with_usage(oai: openai.AsyncOpenAI) -> None:
    messages = user("stream please")
    stream = await oai.chat.completions.create(
        model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == 1 + DEFAULT_REPLY_TOKENS + 1 + 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply_text(DEFAULT_REPLY_TOKENS)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.prompt_tokens == count_input_tokens({"messages": messages})
    assert last.usage.completion_tokens == DEFAULT_REPLY_TOKENS


async def test_openai_stream_without_include_usage_has_no_usage_chunk(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=user("hi"), stream=True)
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == 1 + DEFAULT_REPLY_TOKENS + 1
    assert all(c.usage is None and c.choices for c in chunks)


async def test_openai_chunk_layout_is_exact(raw: httpx.AsyncClient) -> None:
    body = {"model": "m", "messages": user("hi [mock reply_tokens=1]"), "stream": True}
    plain = await raw.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"})
    assert plain.headers["content-type"].startswith("text/event-stream")
    frames = sse_data(plain.text)
    assert frames[-1] == "[DONE]"
    first = orjson.loads(frames[0])
    assert set(first) == {"id", "object", "created", "model", "choices", "service_tier", "system_fingerprint"}
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": "", "refusal": None},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    with_usage = await raw.post(
        "/v1/chat/completions",
        json={**body, "stream_options": {"include_usage": True}},
        headers={"Authorization": "Bearer k"},
    )
    chunks = [orjson.loads(f) for f in sse_data(with_usage.text)[:-1]]
    assert [c["usage"] for c in chunks[:-1]] == [None] * 3
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 1


# -- Anthropic ------------------------------------------------------------------------


async def test_anthropic_message(claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(
        model=CLAUDE, max_tokens=100, system="Be terse.", messages=user("Say hello")
    )
    assert message.id.startswith("msg_")
    assert message.type == "message" and message.role == "assistant" and message.model == CLAUDE
    assert message.content[0].type == "text"
    assert message.content[0].text == reply_text(DEFAULT_REPLY_TOKENS)
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens == (4 + 2) + (4 + 2)
    assert message.usage.output_tokens == DEFAULT_REPLY_TOKENS
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0


async def test_anthropic_max_tokens_stops_early(claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(model=CLAUDE, max_tokens=3, messages=user("hi"))
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


async def test_anthropic_stream_final_message(claude: anthropic.AsyncAnthropic) -> None:
    body = {"system": "sys", "messages": user("tell me [mock reply_tokens=5 cached=100 cache_write=50]")}
    async with claude.messages.stream(model=CLAUDE, max_tokens=64, **body) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert texts == ["This", " is", " a", " deterministic", " reply"]
    assert final.content[0].type == "text" and final.content[0].text == reply_text(5)
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == count_input_tokens(body)
    assert final.usage.output_tokens == 5
    assert final.usage.cache_read_input_tokens == 100
    assert final.usage.cache_creation_input_tokens == 50


async def test_anthropic_event_sequence(raw: httpx.AsyncClient) -> None:
    body = {"model": CLAUDE, "max_tokens": 2, "messages": user("hi"), "stream": True}
    response = await raw.post("/v1/messages", json=body, headers={"x-api-key": "k"})
    names = [line[len("event: ") :] for line in response.text.split("\n") if line.startswith("event: ")]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    events = [orjson.loads(d) for d in sse_data(response.text)]
    assert [e["type"] for e in events] == names
    assert events[0]["message"]["usage"] == {
        "input_tokens": 5,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
    }
    assert events[6] == {
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
        "usage": {"output_tokens": 2},
    }


async def test_anthropic_key_headers_and_max_tokens(mock: MockUpstream, raw: httpx.AsyncClient) -> None:
    body = {"model": CLAUDE, "messages": user("hi")}
    for headers in ({"x-api-key": "k1"}, {"Authorization": "Bearer k2"}):
        accepted = await raw.post("/v1/messages", json={**body, "max_tokens": 5}, headers=headers)
        assert accepted.status_code == 200
    assert [r.headers.get("x-api-key") for r in mock.requests] == ["k1", None]
    anonymous = await raw.post("/v1/messages", json={**body, "max_tokens": 5})
    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
    }
    missing = await raw.post("/v1/messages", json=body, headers={"x-api-key": "k"})
    assert missing.status_code == 400
    assert missing.json()["error"]["type"] == "invalid_request_error"


# -- faults ---------------------------------------------------------------------------


async def test_status_directive_surfaces_as_the_sdk_error(
    oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    with pytest.raises(openai.RateLimitError) as rate_limited:
        await oai.chat.completions.create(model="m", messages=user("[mock status=429 retry_after=7]"))
    assert rate_limited.value.response.headers["retry-after"] == "7"
    assert rate_limited.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.PermissionDeniedError):
        await oai.chat.completions.create(model="m", messages=user("[mock status=403]"))
    with pytest.raises(anthropic.InternalServerError) as server_error:
        await claude.messages.create(model=CLAUDE, max_tokens=5, messages=user("[mock status=500]"))
    assert server_error.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": "mock: status 500 requested"},
    }


async def test_fail_next_queue(
    mock: MockUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    mock.fail_next(503, count=2)
    with pytest.raises(openai.InternalServerError):
        await oai.chat.completions.create(model="m", messages=user("hi"))
    with pytest.raises(anthropic.InternalServerError) as second:
        await claude.messages.create(model=CLAUDE, max_tokens=5, messages=user("hi"))
    assert second.value.response.headers["retry-after"] == "1"
    result = await oai.chat.completions.create(model="m", messages=user("hi"))
    assert result.choices[0].message.content == reply_text(DEFAULT_REPLY_TOKENS)


async def test_set_key_status_fails_one_key_only(mock: MockUpstream, oai: openai.AsyncOpenAI) -> None:
    mock.set_key_status("k", 401)
    with pytest.raises(openai.AuthenticationError):
        await oai.chat.completions.create(model="m", messages=user("hi"))
    async with openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key="other", max_retries=0) as other:
        await other.chat.completions.create(model="m", messages=user("hi"))
    mock.set_key_status("k", None)
    await oai.chat.completions.create(model="m", messages=user("hi"))


async def test_wrong_key_is_401_in_each_format() -> None:
    async with (
        MockUpstream(keys={"good"}) as mock,
        openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key="bad", max_retries=0) as oai,
        anthropic.AsyncAnthropic(base_url=mock.url, api_key="bad", max_retries=0) as claude,
        openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key="good", max_retries=0) as good,
    ):
        with pytest.raises(openai.AuthenticationError) as oai_error:
            await oai.chat.completions.create(model="m", messages=user("hi"))
        assert oai_error.value.body == {
            "message": "Incorrect API key provided.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
        with pytest.raises(anthropic.AuthenticationError):
            await claude.messages.create(model=CLAUDE, max_tokens=5, messages=user("hi"))
        await good.chat.completions.create(model="m", messages=user("hi"))


async def test_drop_after_cuts_the_stream(oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic) -> None:
    received: list[Any] = []
    stream = await oai.chat.completions.create(model="m", messages=user("[mock drop_after=3]"), stream=True)
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 3
    # The Anthropic SDK lets its HTTP client's error through.
    with pytest.raises((httpx2.TransportError, anthropic.APIConnectionError)):
        async with claude.messages.stream(
            model=CLAUDE, max_tokens=9, messages=user("[mock drop_after=4]")
        ) as s:
            await s.get_final_message()


async def test_drop_without_stream_is_a_connection_error(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        await oai.chat.completions.create(model="m", messages=user("[mock drop_after=0]"))


async def test_hang_times_out_and_stop_still_returns(mock: MockUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key="k", max_retries=0, timeout=0.3) as oai:
        with pytest.raises(openai.APITimeoutError):
            await oai.chat.completions.create(model="m", messages=user("[mock hang=1]"))
    started = time.monotonic()
    await mock.stop()
    assert time.monotonic() - started < 1.5


async def test_delays(oai: openai.AsyncOpenAI) -> None:
    started = time.monotonic()
    await oai.chat.completions.create(model="m", messages=user("[mock delay_ms=150]"))
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    stream = await oai.chat.completions.create(
        model="m",
        messages=user("[mock first_byte_delay_ms=50 chunk_delay_ms=10 reply_tokens=5]"),
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == 7
    assert time.monotonic() - started >= 0.05 + 6 * 0.01


async def test_controls_from_headers(oai: openai.AsyncOpenAI) -> None:
    result = await oai.chat.completions.create(
        model="m", messages=user("hi [mock reply_tokens=9]"), extra_headers={"x-mock-reply-tokens": "2"}
    )
    assert result.usage is not None and result.usage.completion_tokens == 2


async def test_unknown_directive_is_a_400(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="unknown mock control"):
        await oai.chat.completions.create(model="m", messages=user("[mock nope=1]"))


async def test_bad_json(raw: httpx.AsyncClient) -> None:
    body = {"model": "m", "messages": user("[mock bad_json=1 reply_tokens=2]")}
    plain = await raw.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"})
    assert plain.status_code == 200
    with pytest.raises(ValueError):
        orjson.loads(plain.content)
    streamed = await raw.post(
        "/v1/messages", json={**body, "max_tokens": 9, "stream": True}, headers={"x-api-key": "k"}
    )
    frames = sse_data(streamed.text)
    with pytest.raises(ValueError):
        for frame in frames:
            orjson.loads(frame)


async def test_no_usage(raw: httpx.AsyncClient) -> None:
    body = {
        "model": "m",
        "messages": user("[mock no_usage=1]"),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    openai_stream = await raw.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"})
    chunks = [orjson.loads(f) for f in sse_data(openai_stream.text)[:-1]]
    assert all(c["choices"] and c["usage"] is None for c in chunks)
    anthropic_stream = await raw.post(
        "/v1/messages", json={**body, "max_tokens": 9}, headers={"x-api-key": "k"}
    )
    assert b'"usage"' not in anthropic_stream.content
    assert b"message_stop" in anthropic_stream.content


# -- records, models, CLI --------------------------------------------------------------


async def test_requests_are_recorded(mock: MockUpstream, oai: openai.AsyncOpenAI) -> None:
    await oai.chat.completions.create(
        model="gpt-4o", messages=user("hi"), max_tokens=7, stream=True, stream_options={"include_usage": True}
    )
    assert mock.request_count == 1
    record = mock.last_request
    assert record.method == "POST" and record.path == "/v1/chat/completions"
    assert record.headers["authorization"] == "Bearer k"
    assert record.body["model"] == "gpt-4o"
    assert record.body["max_tokens"] == 7
    assert record.body["stream_options"] == {"include_usage": True}
    assert orjson.loads(record.raw) == record.body
    mock.clear_requests()
    assert mock.request_count == 0 and mock.requests == []


async def test_records_are_bounded() -> None:
    async with MockUpstream(max_records=2) as mock, httpx.AsyncClient(base_url=mock.url) as client:
        for _ in range(3):
            await client.get("/v1/models", headers={"Authorization": "Bearer k"})
        assert mock.request_count == 3 and len(mock.requests) == 2


async def test_models(oai: openai.AsyncOpenAI, raw: httpx.AsyncClient) -> None:
    models = [model.id async for model in oai.models.list()]
    assert models == list(DEFAULT_MODELS)
    by_anthropic_key = await raw.get("/v1/models", headers={"x-api-key": "k"})
    assert by_anthropic_key.status_code == 200
    anonymous = await raw.get("/v1/models")
    assert anonymous.status_code == 401


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_cli_serves_standalone_on_either_loop(loop: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "trollllm.mockupstream", "--loop", loop, "--port", "0"),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 10)
        url = line.decode().strip().rsplit(" ", 1)[1]
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.get("/v1/models", headers={"Authorization": "Bearer k"})
        assert response.status_code == 200
    finally:
        process.terminate()
        assert await process.wait() == 0


# -- tool calls -----------------------------------------------------------------------------------

OPENAI_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "alpha", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "beta", "parameters": {"type": "object"}}},
]
ANTHROPIC_TOOLS: list[Any] = [
    {"name": "alpha", "input_schema": {"type": "object"}},
    {"name": "beta", "input_schema": {"type": "object"}},
]


async def test_openai_tool_calls_call_the_tools_in_turn(oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(
        model="gpt-4o", messages=user("go [mock tool_calls=3]"), tools=OPENAI_TOOLS
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == reply_text(DEFAULT_REPLY_TOKENS)
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_mock_0", "alpha", '{"index":0,"tool":"alpha"}'),
        ("call_mock_1", "beta", '{"index":1,"tool":"beta"}'),
        ("call_mock_2", "alpha", '{"index":2,"tool":"alpha"}'),
    ]
    assert completion.usage is not None
    assert completion.usage.completion_tokens == DEFAULT_REPLY_TOKENS + 3 * TOOL_CALL_TOKENS


async def test_openai_streamed_tool_calls_come_as_argument_deltas(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model="gpt-4o",
        messages=user("go [mock tool_calls=2 reply_tokens=1]"),
        tools=OPENAI_TOOLS,
        stream=True,
    )
    deltas = [chunk.choices[0].delta.tool_calls async for chunk in stream if chunk.choices]
    calls = [call for delta in deltas if delta for call in delta]
    assert [(c.index, c.id, c.function.name if c.function else None) for c in calls] == [
        (0, "call_mock_0", "alpha"),
        (0, None, None),
        (0, None, None),
        (1, "call_mock_1", "beta"),
        (1, None, None),
        (1, None, None),
    ]
    arguments = "".join(c.function.arguments or "" for c in calls[:3] if c.function)
    assert arguments == '{"index":0,"tool":"alpha"}'


async def test_anthropic_tool_calls_are_tool_use_blocks_streamed_as_input_json(
    claude: anthropic.AsyncAnthropic,
) -> None:
    message = await claude.messages.create(
        model=CLAUDE, max_tokens=100, messages=user("go [mock tool_calls=2]"), tools=ANTHROPIC_TOOLS
    )
    assert message.stop_reason == "tool_use"
    assert [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"] == [
        ("toolu_mock_0", "alpha", {"index": 0, "tool": "alpha"}),
        ("toolu_mock_1", "beta", {"index": 1, "tool": "beta"}),
    ]
    async with claude.messages.stream(
        model=CLAUDE, max_tokens=100, messages=user("go [mock tool_calls=2]"), tools=ANTHROPIC_TOOLS
    ) as stream:
        final = await stream.get_final_message()
    assert [b.model_dump(exclude={"parsed_output"}) for b in final.content] == [
        b.model_dump() for b in message.content
    ]
    assert final.usage.output_tokens == DEFAULT_REPLY_TOKENS + 2 * TOOL_CALL_TOKENS


async def test_tool_calls_without_tools_is_a_400(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="needs a request with tools"):
        await oai.chat.completions.create(model="gpt-4o", messages=user("go [mock tool_calls=1]"))
