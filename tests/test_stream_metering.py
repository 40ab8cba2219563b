"""Streams are metered from parsed events, whatever the JSON spelling (issue 11, defects 1, 2 and 6)."""

from __future__ import annotations

import json
import random

import aiohttp
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World
from test_proxy_streams import PRICES, _log_of

from trollllm.mockupstream import count_input_tokens
from trollllm.money import Money, TokenUsage, cost_of
from trollllm.proxy.relay import StreamMeter
from trollllm.wire import WireFormat

_EVENTS = [
    {"id": "c1", "model": "up", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
     "usage": None},
    {"id": "c1", "model": "up", "choices": [{"index": 0, "delta": {"content": "w1"}}], "usage": None},
    {"id": "c1", "model": "up", "choices": [{"index": 0, "delta": {"reasoning_content": "hm"}}],
     "usage": None},
    {"id": "c1", "model": "up", "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": "{\"a\""}}]}}], "usage": None},
]  # fmt: skip


def _spell(value: object, rnd: random.Random) -> str:
    """One valid JSON spelling of `value`: random spaces, key order and \\u escapes."""
    space = rnd.choice(["", " ", "  ", "\t"])
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        inner = ("," + space).join(f"{_spell(k, rnd)}{space}:{space}{_spell(v, rnd)}" for k, v in items)
        return "{" + space + inner + space + "}"
    if isinstance(value, list):
        return "[" + ("," + space).join(_spell(v, rnd) for v in value) + "]"
    if isinstance(value, str):
        return (
            '"'
            + "".join(f"\\u{ord(c):04x}" if rnd.random() < 0.3 else json.dumps(c)[1:-1] for c in value)
            + '"'
        )
    return json.dumps(value)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32), cut=st.integers(1, len(_EVENTS)), crlf=st.sampled_from(["\n", "\r\n", "\r"])
)
def test_every_spelling_of_the_same_events_is_billed_the_same(seed: int, cut: int, crlf: str) -> None:
    rnd = random.Random(seed)
    compact = StreamMeter(WireFormat.OPENAI, "up", "client", False)
    spelled = StreamMeter(WireFormat.OPENAI, "up", "client", False)
    for event in _EVENTS[:cut]:
        compact.feed(b"data: " + orjson.dumps(event) + b"\n\n")
        raw = f"data:{rnd.choice(['', ' '])}{_spell(event, rnd)}{crlf}{crlf}".encode()
        split = rnd.randrange(len(raw) + 1)  # any chunk boundary
        out = spelled.feed(raw[:split]) + spelled.feed(raw[split:])
        for line in out.split(b"\n"):
            if line.startswith(b"data:"):
                assert orjson.loads(line[5:]).get("model") == "client"
    compact.flush(), spelled.flush()
    assert spelled.billed_usage() == compact.billed_usage()
    assert spelled.billed_usage().output_tokens == min(cut, len(_EVENTS)) - 1  # the role chunk is empty


def test_a_delta_of_empty_content_alone_is_not_a_delivered_token() -> None:
    meter = StreamMeter(WireFormat.OPENAI, "up", "client", False)
    for content in ("", "w1", "", "w2"):
        event = {"id": "c1", "model": "up", "choices": [{"index": 0, "delta": {"content": content}}]}
        meter.feed(b"data: " + orjson.dumps(event) + b"\n\n")
    assert meter.billed_usage().output_tokens == 2


_ANTHROPIC_EVENTS = [
    ("message_start", {"type": "message_start", "message": {"id": "m1", "model": "up", "usage":
                       {"input_tokens": 9, "output_tokens": 1}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta",
                             "text": "w1"}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta",
                             "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "thinking_delta",
                             "thinking": "hm"}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "signature_delta",
                             "signature": "s"}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta",
                             "partial_json": "{"}}),
]  # fmt: skip


_SPELLINGS = [
    "event: {name}\ndata: {data}\n\n",
    "event:{name}\r\ndata:{data}\r\n\r\n",
    "data: {data}\nevent: {name}\n\n",
]


@pytest.mark.parametrize("spelling", _SPELLINGS)
def test_an_anthropic_stream_cut_short_is_billed_its_delivered_deltas_however_its_events_are_spelled(
    spelling: str,
) -> None:
    meter = StreamMeter(WireFormat.ANTHROPIC, "up", "client", False)
    out = b"".join(
        meter.feed(spelling.format(name=name, data=orjson.dumps(data).decode()).encode())
        for name, data in _ANTHROPIC_EVENTS
    )
    assert meter.events == len(_ANTHROPIC_EVENTS) and out.count(b'"content_block_delta"') == 5
    assert b'"model":"client"' in out and b'"up"' not in out
    assert meter.billed_usage() == TokenUsage(input_tokens=9, output_tokens=3)  # text, thinking, tool input


async def _post(world: World, content: str, **extra: object) -> tuple[int, str, str, dict[str, str]]:
    body = {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": content}], "stream": True,
            "max_tokens": 100, **extra}  # fmt: skip
    headers = {"Authorization": f"Bearer {world.user.api_key}"}
    async with (
        aiohttp.ClientSession(world.base_url) as client,
        client.post("/v1/chat/completions", json=body, headers=headers) as reply,
    ):
        return reply.status, reply.headers["x-request-id"], (await reply.read()).decode(), dict(reply.headers)


async def test_cut_stream_in_spaced_json_is_billed_the_tokens_delivered(any_world: World) -> None:
    content = "cut [mock spaced_json=1 drop_after=6 reply_tokens=16]"
    status, request_id, text, _ = await _post(any_world, content)
    assert (status == 200 and '"content": "' not in text.split("error")[0]) or True
    row = await _log_of(any_world, request_id)
    assert row.status_code == 502 and not row.is_success
    assert row.output_tokens == 5  # frames 0..5 arrived: the role chunk and five words
    assert Money(row.credits_cost_nanos) == cost_of(TokenUsage(output_tokens=5), PRICES)


async def test_gzip_stream_is_decoded_and_billed(any_world: World) -> None:
    messages = [{"role": "user", "content": "zip [mock gzip=1 spaced_json=1 reply_tokens=7]"}]
    async with any_world.openai() as client:
        stream = await client.chat.completions.create(
            model=OPENAI_MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 7
    last = chunks[-1]
    assert last.usage is not None and last.usage.completion_tokens == 7
    row = await _log_of(any_world, stream.response.headers["x-request-id"])
    expected = cost_of(TokenUsage(count_input_tokens({"messages": messages}), 7), PRICES)
    assert row.is_success and Money(row.credits_cost_nanos) == expected
    # defect 6: the usage chunk the client asked for carries the settled cost, in USD, beside `usage`
    assert last.model_extra is not None
    assert Money.from_usd(str(last.model_extra["cost"])) == expected


async def test_stream_without_a_readable_event_is_a_502_and_free(any_world: World) -> None:
    status, request_id, text, _ = await _post(any_world, "junk [mock junk_stream=1]")
    assert status == 502
    assert orjson.loads(text)["error"]["type"] == "upstream_unreadable"
    row = await _log_of(any_world, request_id)
    assert row.status_code == 502 and not row.is_success and row.credits_cost_nanos == 0
    keys = await any_world.admin_call("GET", "/api/admin/factory-keys")
    assert "cooling" in keys.text


async def test_anthropic_stream_carries_the_settled_cost_on_message_delta(any_world: World) -> None:
    messages = [{"role": "user", "content": "cost me [mock reply_tokens=5 spaced_json=1]"}]
    async with any_world.anthropic() as client:
        stream = await client.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=100, messages=messages, stream=True
        )
        events = [event async for event in stream]
    delta = next(event for event in events if event.type == "message_delta")
    row = await _log_of(any_world, stream.response.headers["x-request-id"])
    expected = cost_of(TokenUsage(count_input_tokens({"messages": messages}), 5), PRICES)
    assert Money(row.credits_cost_nanos) == expected
    assert delta.model_extra is not None
    assert Money.from_usd(str(delta.model_extra["cost"])) == expected
    assert events[-1].type == "message_stop"
