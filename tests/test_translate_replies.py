"""Answers translated back (SPEC §6): whole replies, stop reasons, usage net of cache (SPEC §4), errors,
and streams event by event — in both directions."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest

from trollllm.mockupstream.anthropic_format import AnthropicWire
from trollllm.mockupstream.controls import Controls, plan_reply
from trollllm.mockupstream.openai_format import OpenAIWire
from trollllm.money import Money, TokenUsage
from trollllm.translate.replies import anthropic_error, anthropic_reply, openai_error, openai_reply
from trollllm.translate.stream_to_anthropic import OpenAIToAnthropicStream
from trollllm.translate.stream_to_openai import AnthropicToOpenAIStream

TOOLS = [{"name": "weather", "input_schema": {}}]


def _message(**fields: Any) -> bytes:
    base = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "up",
        "content": [],
        "stop_reason": "end_turn",
    }
    return orjson.dumps({**base, **fields})


def _completion(message: dict[str, Any], finish: str = "stop", **fields: Any) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
    return orjson.dumps(
        {"id": "chatcmpl-1", "object": "chat.completion", "model": "up", "choices": [choice], **fields}
    )


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_anthropic_stop_reason_is_an_openai_finish_reason(stop_reason: str, finish_reason: str) -> None:
    body, _ = openai_reply(_message(stop_reason=stop_reason), "client")
    assert orjson.loads(body)["choices"][0]["finish_reason"] == finish_reason


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_openai_finish_reason_is_an_anthropic_stop_reason(finish_reason: str, stop_reason: str) -> None:
    body, _ = anthropic_reply(_completion({"content": "x"}, finish_reason), "client")
    assert orjson.loads(body)["stop_reason"] == stop_reason


def test_anthropic_message_becomes_a_chat_completion_with_text_tool_calls_and_usage() -> None:
    content = [
        {"type": "text", "text": "Let me "},
        {"type": "text", "text": "check."},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Rome"}},
        {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Oslo"}},
    ]
    usage = {
        "input_tokens": 10,
        "output_tokens": 7,
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 5,
    }
    body, billed = openai_reply(
        _message(content=content, usage=usage, stop_reason="tool_use"), "claude-client"
    )
    completion = orjson.loads(body)
    assert completion["id"] == "msg_1" and completion["object"] == "chat.completion"
    assert completion["model"] == "claude-client"
    assert completion["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
            },
            {
                "id": "toolu_2",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
            },
        ],
    }
    assert completion["usage"] == {
        "prompt_tokens": 18,
        "completion_tokens": 7,
        "total_tokens": 25,
        "prompt_tokens_details": {"cached_tokens": 5},
    }
    assert billed == TokenUsage(
        10, 7, cache_write_tokens=3, cache_hit_tokens=5
    )  # billed from Anthropic's own


def test_a_tool_only_anthropic_answer_has_null_openai_content() -> None:
    content = [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]
    body, _ = openai_reply(_message(content=content), "c")
    assert orjson.loads(body)["choices"][0]["message"]["content"] is None


def test_chat_completion_becomes_an_anthropic_message_with_net_input() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}}
    ]
    usage = {"prompt_tokens": 100, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 60}}
    raw = _completion({"content": "Sure.", "tool_calls": calls}, "tool_calls", usage=usage)
    body, billed = anthropic_reply(raw, "gpt-client")
    assert orjson.loads(body) == {
        "id": "chatcmpl-1",
        "type": "message",
        "role": "assistant",
        "model": "gpt-client",
        "content": [
            {"type": "text", "text": "Sure."},
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Rome"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 40,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 60,
            "output_tokens": 9,
        },
    }
    assert billed == TokenUsage(40, 9, cache_hit_tokens=60)


def test_tool_arguments_that_are_not_an_object_are_kept_whole() -> None:
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "not json"}}]
    body, _ = anthropic_reply(_completion({"content": None, "tool_calls": calls}, "tool_calls"), "c")
    assert orjson.loads(body)["content"] == [
        {"type": "tool_use", "id": "c", "name": "f", "input": {"arguments": "not json"}}
    ]


def test_a_reply_without_usage_bills_nothing_here() -> None:
    assert openai_reply(_message(content=[{"type": "text", "text": "x"}]), "c")[1] is None
    assert anthropic_reply(_completion({"content": "x"}), "c")[1] is None


def test_anthropic_error_reaches_an_openai_client_in_its_shape() -> None:
    raw = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    assert orjson.loads(openai_error(529, raw)) == {
        "error": {
            "message": "Overloaded",
            "type": "overloaded_error",
            "param": None,
            "code": "overloaded_error",
        }
    }


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "invalid_request_error"), (404, "not_found_error"), (429, "rate_limit_error"), (503, "api_error")],
)
def test_openai_error_reaches_an_anthropic_client_typed_by_its_status(status: int, kind: str) -> None:
    raw = b'{"error":{"message":"nope","type":"whatever","param":null,"code":null}}'
    assert orjson.loads(anthropic_error(status, raw)) == {
        "type": "error",
        "error": {"type": kind, "message": "nope"},
    }


def test_an_error_body_that_is_not_json_is_passed_as_the_message_with_keys_masked() -> None:
    raw = b"<html>bad gateway sk-trollllm-0123456789abcdef0123456789abcdef</html>"
    message = orjson.loads(anthropic_error(502, raw))["error"]["message"]
    assert message.startswith("<html>bad gateway sk-trollllm-****") and "0123456789abcdef0123" not in message


# -- streams ------------------------------------------------------------------------------------------


def _frames(
    wire: OpenAIWire | AnthropicWire, reply_tokens: int, tool_calls: int, usage: bool = True
) -> list[bytes]:
    tools = [{"type": "function", "function": {"name": "weather"}}] if isinstance(wire, OpenAIWire) else TOOLS
    body = {"model": "up", "messages": [{"role": "user", "content": "hi there"}], "tools": tools}
    body["stream_options"] = {"include_usage": True}
    controls = Controls(reply_tokens=reply_tokens, tool_calls=tool_calls, cached=3, no_usage=not usage)
    reply = plan_reply(body, controls, max_tokens=100, response_id="r1", created=1)
    return wire.events(reply, body)


def _events(data: bytes) -> list[tuple[str | None, dict[str, Any] | str]]:
    out: list[tuple[str | None, dict[str, Any] | str]] = []
    for event in data.decode().split("\n\n"):
        if not event:
            continue
        name = None
        for line in event.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((name, line[6:] if line[6:] == "[DONE]" else json.loads(line[6:])))
    return out


def test_anthropic_stream_becomes_openai_chunks_event_by_event() -> None:
    stream = AnthropicToOpenAIStream("client", client_wants_usage=True)
    outputs = [stream.feed(frame) for frame in _frames(AnthropicWire(), 2, 1)]
    # every text or argument delta goes out at once, with the event that carried it
    assert all(
        out
        for out, frame in zip(outputs, _frames(AnthropicWire(), 2, 1), strict=True)
        if b"_delta\n" in frame
    )
    sent = _events(b"".join(outputs) + stream.flush() + stream.release_held(Money.from_usd("0.0000123")))
    deltas = [
        payload["choices"][0]["delta"]
        for _, payload in sent
        if isinstance(payload, dict) and payload["choices"]
    ]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "This"},
        {"content": " is"},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "toolu_mock_0",
                    "type": "function",
                    "function": {"name": "weather", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"index":0,"to'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": 'ol":"weather"}'}}]},
        {},
    ]
    finish = [p["choices"][0]["finish_reason"] for _, p in sent if isinstance(p, dict) and p["choices"]]
    assert finish[-1] == "tool_calls"
    usage_chunk = sent[-2][1]
    assert isinstance(usage_chunk, dict) and usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 4 and usage_chunk["usage"][
        "prompt_tokens_details"
    ] == {"cached_tokens": 3}
    assert usage_chunk["cost"] == 0.0000123
    assert sent[-1] == (None, "[DONE]")
    assert all(p["model"] == "client" for _, p in sent if isinstance(p, dict))


def test_openai_stream_becomes_anthropic_events_event_by_event() -> None:
    stream = OpenAIToAnthropicStream("client", client_wants_usage=False)
    frames = _frames(OpenAIWire(), 2, 2)
    data = b"".join(stream.feed(frame) for frame in frames) + stream.flush()
    held = stream.release_held(Money.from_usd("0.5"))
    sent = _events(data + held)
    assert [name for name, _ in sent] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        *["content_block_start", "content_block_delta", "content_block_delta", "content_block_stop"] * 2,
        "message_delta",
        "message_stop",
    ]
    payloads = [p for _, p in sent if isinstance(p, dict)]
    assert payloads[5]["content_block"] == {
        "type": "tool_use",
        "id": "call_mock_0",
        "name": "weather",
        "input": {},
    }
    assert payloads[6] == {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"index":0,"to'},
    }
    assert payloads[9]["index"] == 2
    assert payloads[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert payloads[-2]["usage"] == {
        "input_tokens": 6,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 3,
        "output_tokens": 6,
    }
    assert payloads[-2]["cost"] == 0.5
    assert held.startswith(b"event: message_delta\n")  # held back until settlement knew the cost


@pytest.mark.parametrize("direction", ["to_openai", "to_anthropic"])
def test_a_translated_stream_does_not_depend_on_how_the_bytes_are_cut(direction: str) -> None:
    wire = AnthropicWire() if direction == "to_openai" else OpenAIWire()
    frames = b"".join(_frames(wire, 3, 1)).replace(b"\n", b"\r\n")

    def run(pieces: list[bytes]) -> bytes:
        cls = AnthropicToOpenAIStream if direction == "to_openai" else OpenAIToAnthropicStream
        stream = cls("client", True)
        out = b"".join(stream.feed(p) for p in pieces) + stream.flush() + stream.release_held(None)
        return re.sub(rb'"created":\d+', b'"created":0', out)  # the clock may tick between the runs

    whole = run([frames])
    assert run([frames[i : i + 1] for i in range(len(frames))]) == whole
    assert whole


def test_a_cut_anthropic_stream_bills_the_input_it_announced_and_the_tokens_delivered() -> None:
    stream = AnthropicToOpenAIStream("client", client_wants_usage=False)
    for frame in _frames(AnthropicWire(), 10, 0)[:8]:  # start, block start, ping, 5 text deltas
        stream.feed(frame)
    assert stream.billed_usage() == TokenUsage(6, 5, cache_hit_tokens=3)


def test_a_cut_openai_stream_bills_the_tokens_delivered() -> None:
    stream = OpenAIToAnthropicStream("client", client_wants_usage=False)
    for frame in _frames(OpenAIWire(), 10, 0)[:5]:  # role chunk, 4 content chunks
        stream.feed(frame)
    assert stream.billed_usage() == TokenUsage(output_tokens=4)
    assert stream.release_held(None) == b""  # nothing final to send for a stream that never ended


def test_an_error_event_mid_stream_is_translated() -> None:
    stream = AnthropicToOpenAIStream("client", False)
    out = stream.feed(
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}\n\n'
    )
    assert _events(out) == [
        (
            None,
            {
                "error": {
                    "message": "busy",
                    "type": "overloaded_error",
                    "param": None,
                    "code": "overloaded_error",
                }
            },
        )
    ]
    back = OpenAIToAnthropicStream("client", False)
    out = back.feed(b'data: {"error":{"message":"busy","type":"server_error"}}\n\n')
    assert _events(out) == [("error", {"type": "error", "error": {"type": "api_error", "message": "busy"}})]


def test_tool_calls_without_an_index_are_told_apart_by_their_ids() -> None:
    stream = OpenAIToAnthropicStream("client", False)
    out = b""
    for call_id, name, arguments in (("a", "f", '{"x":'), (None, None, "1}"), ("b", "g", "{}")):
        call: dict[str, Any] = {"function": {"arguments": arguments}}
        if call_id:
            call.update(id=call_id, type="function")
            call["function"]["name"] = name
        chunk = {"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}
        out += stream.feed(b"data: " + orjson.dumps(chunk) + b"\n\n")
    starts = [
        p["content_block"] for n, p in _events(out) if n == "content_block_start" and isinstance(p, dict)
    ]
    assert [(b["id"], b["name"]) for b in starts] == [("a", "f"), ("b", "g")]
    deltas = [
        (p["index"], p["delta"]["partial_json"])
        for n, p in _events(out)
        if n == "content_block_delta" and isinstance(p, dict)
    ]
    assert deltas == [(0, '{"x":'), (0, "1}"), (1, "{}")]
