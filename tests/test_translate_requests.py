"""Request translation, table by table (SPEC §6): each OpenAI ⇄ Anthropic mapping in both directions, the
one-way ones, and every field the other format cannot express refused with a 400 naming it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from trollllm.errors import InvalidRequest
from trollllm.proxy.requests import parse_request
from trollllm.translate.to_anthropic import anthropic_request
from trollllm.translate.to_openai import openai_request
from trollllm.translate.translation import ANTHROPIC_TOOL_PROMPT_TOKENS
from trollllm.wire import WireFormat

USER = {"role": "user", "content": "hi"}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
OPENAI_TOOL = {"type": "function", "function": {"name": "weather", "description": "d", "parameters": SCHEMA}}
ANTHROPIC_TOOL = {"name": "weather", "description": "d", "input_schema": SCHEMA}
CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}}
TOOL_USE = {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Rome"}}
PNG = "iVBORw0KGgo="

# (what it shows, OpenAI body, Anthropic body): each maps to the other exactly, in both directions.
BOTH_WAYS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("text", {"messages": [USER]}, {"messages": [USER]}),
    (
        "system prompt",
        {"messages": [{"role": "system", "content": "be brief"}, USER]},
        {"system": "be brief", "messages": [USER]},
    ),
    (
        "system prompt in parts",
        {"messages": [{"role": "system", "content": [{"type": "text", "text": "a"}]}, USER]},
        {"system": [{"type": "text", "text": "a"}], "messages": [USER]},
    ),
    (
        "multi-turn",
        {"messages": [USER, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]},
        {"messages": [USER, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]},
    ),
    (
        "text parts",
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
            ]
        },
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
            ]
        },
    ),
    (
        "image, base64",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}],
                }
            ]
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        }
                    ],
                }
            ]
        },
    ),
    (
        "image, by URL",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
                }
            ]
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}],
                }
            ]
        },
    ),
    ("tools", {"messages": [USER], "tools": [OPENAI_TOOL]}, {"messages": [USER], "tools": [ANTHROPIC_TOOL]}),
    (
        "tool call without text",
        {"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [CALL]}]},
        {"messages": [USER, {"role": "assistant", "content": [TOOL_USE]}]},
    ),
    (
        "tool call after text parts",
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "let me see"}],
                    "tool_calls": [CALL],
                },
            ]
        },
        {
            "messages": [
                USER,
                {"role": "assistant", "content": [{"type": "text", "text": "let me see"}, TOOL_USE]},
            ]
        },
    ),
    (
        "parallel tool results",
        {
            "messages": [
                USER,
                {"role": "assistant", "content": None, "tool_calls": [CALL, {**CALL, "id": "call_2"}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
            ]
        },
        {
            "messages": [
                USER,
                {"role": "assistant", "content": [TOOL_USE, {**TOOL_USE, "id": "call_2"}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_2",
                            "content": [{"type": "text", "text": "rain"}],
                        },
                    ],
                },
            ]
        },
    ),
    (
        "tool_choice auto",
        {"messages": [USER], "tool_choice": "auto"},
        {"messages": [USER], "tool_choice": {"type": "auto"}},
    ),
    (
        "tool_choice none",
        {"messages": [USER], "tool_choice": "none"},
        {"messages": [USER], "tool_choice": {"type": "none"}},
    ),
    (
        "tool_choice required",
        {"messages": [USER], "tool_choice": "required"},
        {"messages": [USER], "tool_choice": {"type": "any"}},
    ),
    (
        "tool_choice of one function",
        {"messages": [USER], "tool_choice": {"type": "function", "function": {"name": "weather"}}},
        {"messages": [USER], "tool_choice": {"type": "tool", "name": "weather"}},
    ),
    (
        "no parallel tool calls",
        {"messages": [USER], "tool_choice": "required", "parallel_tool_calls": False},
        {"messages": [USER], "tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
    ),
    (
        "stop sequences",
        {"messages": [USER], "stop": ["END", "##"]},
        {"messages": [USER], "stop_sequences": ["END", "##"]},
    ),
    (
        "sampling and streaming",
        {"messages": [USER], "temperature": 0.5, "top_p": 0.9, "stream": True},
        {"messages": [USER], "temperature": 0.5, "top_p": 0.9, "stream": True},
    ),
    ("user", {"messages": [USER], "user": "u-42"}, {"messages": [USER], "metadata": {"user_id": "u-42"}}),
]


@pytest.mark.parametrize(
    ("openai_body", "anthropic_body"), [c[1:] for c in BOTH_WAYS], ids=[c[0] for c in BOTH_WAYS]
)
def test_openai_request_maps_to_anthropic(
    openai_body: dict[str, Any], anthropic_body: dict[str, Any]
) -> None:
    assert anthropic_request(openai_body) == anthropic_body


@pytest.mark.parametrize(
    ("openai_body", "anthropic_body"), [c[1:] for c in BOTH_WAYS], ids=[c[0] for c in BOTH_WAYS]
)
def test_anthropic_request_maps_to_openai(
    openai_body: dict[str, Any], anthropic_body: dict[str, Any]
) -> None:
    assert openai_request(anthropic_body) == openai_body


# (what it shows, OpenAI body, its Anthropic translation): one way only.
TO_ANTHROPIC: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "a strict tool (Anthropic's strict tool use)",
        {
            "messages": [USER],
            "tools": [{"type": "function", "function": {**OPENAI_TOOL["function"], "strict": True}}],
        },
        {"messages": [USER], "tools": [{**ANTHROPIC_TOOL, "strict": True}]},
    ),
    (
        "a single stop string",
        {"messages": [USER], "stop": "END"},
        {"messages": [USER], "stop_sequences": ["END"]},
    ),
    (
        "a developer message is the system prompt",
        {"messages": [{"role": "developer", "content": "x"}, USER]},
        {"system": "x", "messages": [USER]},
    ),
    (
        "tool call after a text string",
        {"messages": [{"role": "assistant", "content": "ok", "tool_calls": [CALL]}]},
        {"messages": [{"role": "assistant", "content": [{"type": "text", "text": "ok"}, TOOL_USE]}]},
    ),
    (
        "a tool without parameters",
        {"messages": [USER], "tools": [{"type": "function", "function": {"name": "now"}}]},
        {
            "messages": [USER],
            "tools": [{"name": "now", "input_schema": {"type": "object", "properties": {}}}],
        },
    ),
    (
        "no parallel calls, no choice",
        {"messages": [USER], "parallel_tool_calls": False},
        {"messages": [USER], "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
    ),
    (
        "safety_identifier",
        {"messages": [USER], "safety_identifier": "s-1"},
        {"messages": [USER], "metadata": {"user_id": "s-1"}},
    ),
    (
        "no-op defaults",
        {
            "messages": [USER],
            "n": 1,
            "logprobs": False,
            "frequency_penalty": 0,
            "presence_penalty": 0,
            "store": False,
            "response_format": {"type": "text"},
            "stream_options": {"include_usage": True},
        },
        {"messages": [USER]},
    ),
    (
        "max tokens are the gate's",
        {"model": "m", "messages": [USER], "max_tokens": 5, "max_completion_tokens": 9},
        {"messages": [USER]},
    ),
    (
        "image detail auto",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "auto"}}
                    ],
                }
            ]
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}],
                }
            ]
        },
    ),
]
TO_OPENAI: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "cache_control marks",
        {
            "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}],
                }
            ],
        },
        {
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "s"}]},
                {"role": "user", "content": [{"type": "text", "text": "a"}]},
            ]
        },
    ),
    (
        "tool results then text",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "x"},
                        {"type": "text", "text": "go on"},
                    ],
                }
            ]
        },
        {
            "messages": [
                {"role": "tool", "tool_call_id": "t1", "content": "x"},
                {"role": "user", "content": [{"type": "text", "text": "go on"}]},
            ]
        },
    ),
    (
        "a tool result without content",
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]}]},
        {"messages": [{"role": "tool", "tool_call_id": "t1", "content": ""}]},
    ),
    (
        "thinking disabled",
        {"messages": [USER], "thinking": {"type": "disabled"}, "max_tokens": 9},
        {"messages": [USER]},
    ),
    (
        "a custom tool",
        {"messages": [USER], "tools": [{"type": "custom", **ANTHROPIC_TOOL}]},
        {"messages": [USER], "tools": [OPENAI_TOOL]},
    ),
]


@pytest.mark.parametrize(
    ("openai_body", "anthropic_body"), [c[1:] for c in TO_ANTHROPIC], ids=[c[0] for c in TO_ANTHROPIC]
)
def test_openai_only_shapes_map_to_anthropic(
    openai_body: dict[str, Any], anthropic_body: dict[str, Any]
) -> None:
    assert anthropic_request(openai_body) == anthropic_body


@pytest.mark.parametrize(
    ("anthropic_body", "openai_body"), [c[1:] for c in TO_OPENAI], ids=[c[0] for c in TO_OPENAI]
)
def test_anthropic_only_shapes_map_to_openai(
    anthropic_body: dict[str, Any], openai_body: dict[str, Any]
) -> None:
    assert openai_request(anthropic_body) == openai_body


def _user(part: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [part]}]}


# (OpenAI body, the field named in the 400)
OPENAI_REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"messages": [USER], "n": 2}, "n"),
    ({"messages": [USER], "seed": 1}, "seed"),
    ({"messages": [USER], "logit_bias": {"1": 2}}, "logit_bias"),
    ({"messages": [USER], "logprobs": True}, "logprobs"),
    ({"messages": [USER], "frequency_penalty": 0.5}, "frequency_penalty"),
    ({"messages": [USER], "reasoning_effort": "low"}, "reasoning_effort"),
    ({"messages": [USER], "response_format": {"type": "json_object"}}, "response_format"),
    ({"messages": [USER], "response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
    ({"messages": [USER], "metadata": {"a": "b"}}, "metadata"),
    ({"messages": [USER], "modalities": ["audio"]}, "modalities"),
    ({"messages": [USER], "vendor_flag": 1}, "vendor_flag"),
    (
        {"messages": [USER], "stream_options": {"include_obfuscation": False}},
        "stream_options.include_obfuscation",
    ),
    ({"messages": [USER], "user": "a", "safety_identifier": "b"}, "safety_identifier"),
    ({"messages": [USER, {"role": "system", "content": "late"}]}, "messages[1].role"),
    ({"messages": [{"role": "user", "content": "x", "name": "bob"}]}, "messages[0].name"),
    ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
    (_user({"type": "input_audio", "input_audio": {}}), "messages[0].content[0].type"),
    (_user({"type": "file", "file": {"file_id": "f"}}), "messages[0].content[0].type"),
    (
        _user({"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "high"}}),
        "messages[0].content[0].image_url.detail",
    ),
    ({"messages": [{"role": "assistant", "content": "x", "refusal": "no"}]}, "messages[0].refusal"),
    (
        {
            "messages": [
                {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "[1]"}}]}
            ]
        },
        "messages[0].tool_calls[0].function.arguments",
    ),
    ({"messages": [USER], "tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].custom"),
    (
        {"messages": [USER], "tools": [{"type": "function", "function": {"name": "x", "strict": "yes"}}]},
        "tools[0].function.strict",
    ),
    (
        {"messages": [USER], "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}},
        "tool_choice.allowed_tools",
    ),
]
ANTHROPIC_REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"messages": [USER], "top_k": 5}, "top_k"),
    ({"messages": [USER], "thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
    ({"messages": [USER], "service_tier": "auto"}, "service_tier"),
    ({"messages": [USER], "metadata": {"user_id": "u", "other": 1}}, "metadata.other"),
    (
        _user({"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}),
        "messages[0].content[0].type",
    ),
    (_user({"type": "text", "text": "a", "citations": []}), "messages[0].content[0].citations"),
    (
        _user({"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": True}),
        "messages[0].content[0].is_error",
    ),
    (
        _user({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}),
        "messages[0].content[0].content[0].type",
    ),
    (
        _user({"type": "image", "source": {"type": "file", "file_id": "f"}}),
        "messages[0].content[0].source.type",
    ),
    (
        {
            "messages": [
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]}
            ]
        },
        "messages[0].content[0].type",
    ),
    ({"messages": [USER], "tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools[0].type"),
    ({"messages": [USER], "system": [{"type": "image", "source": {}}]}, "system[0].type"),
]


@pytest.mark.parametrize(("body", "field"), OPENAI_REFUSED, ids=[f for _, f in OPENAI_REFUSED])
def test_openai_field_without_anthropic_equivalent_is_refused_naming_it(
    body: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        anthropic_request(body)
    assert refused.value.field == field


@pytest.mark.parametrize(("body", "field"), ANTHROPIC_REFUSED, ids=[f for _, f in ANTHROPIC_REFUSED])
def test_anthropic_field_without_openai_equivalent_is_refused_naming_it(
    body: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        openai_request(body)
    assert refused.value.field == field


def test_the_hold_bounds_a_translation_larger_than_the_request() -> None:
    tools = [{"name": f"t{i}", "input_schema": {}} for i in range(50)]  # each grows by its `function` wrapper
    raw = orjson.dumps({"model": "gpt", "max_tokens": 5, "messages": [USER], "tools": tools})
    request = parse_request(raw, WireFormat.ANTHROPIC)
    request.translate_to(WireFormat.OPENAI)
    upstream = request.upstream_body("gpt", 5)
    assert len(upstream) > len(raw)
    assert request.input_bound_tokens >= len(upstream) - len(b',"max_completion_tokens":5,"model":"gpt"')


def test_a_translated_request_goes_upstream_with_the_bound_and_the_usage_chunk() -> None:
    raw = orjson.dumps({"model": "claude", "max_tokens": 5, "messages": [USER], "stream": True})
    request = parse_request(raw, WireFormat.ANTHROPIC)
    request.translate_to(WireFormat.OPENAI)
    assert orjson.loads(request.upstream_body("gpt-up", 300)) == {
        "model": "gpt-up",
        "messages": [USER],
        "stream": True,
        "max_completion_tokens": 300,
        "stream_options": {"include_usage": True},
    }


def test_the_hold_adds_anthropics_tool_prompt_to_a_request_translated_with_tools() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    raw = orjson.dumps({"model": "claude", "messages": [USER], "tools": tools})
    without_tools = parse_request(orjson.dumps({"model": "claude", "messages": [USER]}), WireFormat.OPENAI)
    without_tools.translate_to(WireFormat.ANTHROPIC)
    request = parse_request(raw, WireFormat.OPENAI)
    request.translate_to(WireFormat.ANTHROPIC)
    assert request.input_bound_tokens >= len(raw) + ANTHROPIC_TOOL_PROMPT_TOKENS
    assert without_tools.input_bound_tokens < ANTHROPIC_TOOL_PROMPT_TOKENS
