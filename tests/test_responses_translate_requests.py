"""Responses requests translated to chat completions and to Anthropic messages (SPEC §6 "Responses API"):
each item, tool and field, and every one a route cannot carry refused with a 400 naming it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from responses_helpers import HmacSealer

from trollllm.errors import InvalidRequest
from trollllm.responses.translate import translate_responses_request
from trollllm.responses.translate.sealing import SEALED_PREFIX, seal_thinking
from trollllm.responses.translate.tools import flat_name
from trollllm.wire import WireFormat

CHAT, MESSAGES = WireFormat.OPENAI, WireFormat.ANTHROPIC
SEALER = HmacSealer()
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {"type": "function", "name": "weather", "description": "d", "parameters": SCHEMA, "strict": False}
PNG = "data:image/png;base64,iVBORw0KGgo="


def to(wire: WireFormat, **body: Any) -> dict[str, Any]:
    body.setdefault("input", "hi")
    return translate_responses_request({"model": "m", **body}, wire, SEALER).body


def refused(wire: WireFormat, **body: Any) -> str | None:
    body.setdefault("input", "hi")
    with pytest.raises(InvalidRequest) as caught:
        translate_responses_request({"model": "m", **body}, wire, SEALER)
    assert caught.value.status_code == 400
    assert caught.value.error_type == "invalid_request_error"
    return caught.value.field


def test_string_input_and_instructions_are_a_system_and_a_user_message() -> None:
    assert to(CHAT, instructions="be brief")["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    body = to(MESSAGES, instructions="be brief")
    assert body["system"] == [{"type": "text", "text": "be brief"}]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def test_developer_messages_are_system_messages_in_place_on_chat() -> None:
    items = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
        {"role": "user", "content": "a"},
        {"role": "developer", "content": "later"},
    ]
    assert [m["role"] for m in to(CHAT, input=items)["messages"]] == ["system", "user", "system"]


def test_a_late_developer_message_stays_in_place_as_user_text_on_anthropic() -> None:
    items = [
        {"role": "developer", "content": "rules"},
        {"role": "user", "content": "a"},
        {"role": "developer", "content": "later"},
    ]
    body = to(MESSAGES, input=items)
    assert body["system"] == [{"type": "text", "text": "rules"}]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "later"}]}
    ]


def test_images_by_data_url_and_by_http_url() -> None:
    parts = [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": PNG, "detail": "auto"},
        {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"},
    ]
    chat = to(CHAT, input=[{"role": "user", "content": parts}])["messages"][0]["content"]
    assert chat == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "auto"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}},
    ]
    parts[2]["detail"] = "high"
    blocks = to(MESSAGES, input=[{"role": "user", "content": parts}])["messages"][0]["content"]
    assert blocks[1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
    ]


def test_a_low_detail_image_is_refused_on_anthropic() -> None:
    image = {"type": "input_image", "image_url": PNG, "detail": "low"}
    assert refused(MESSAGES, input=[{"role": "user", "content": [image]}]) == "input[0].content[0].detail"


def test_an_uploaded_file_is_refused_naming_it() -> None:
    image = {"type": "input_image", "file_id": "file_1", "detail": "auto"}
    assert refused(CHAT, input=[{"role": "user", "content": [image]}]) == "input[0].content[0].file_id"
    pdf = {"type": "input_file", "file_data": "x"}
    assert refused(MESSAGES, input=[{"role": "user", "content": [pdf]}]) == "input[0].content[0].type"


TOOL_TURN = [
    {"role": "user", "content": "weather?"},
    {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "checking", "annotations": []}],
    },
    {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city":"Rome"}'},
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
]


def test_a_function_call_round_trip_on_chat() -> None:
    assert to(CHAT, input=TOOL_TURN, tools=[WEATHER])["messages"][1:] == [
        {
            "role": "assistant",
            "content": "checking",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]


def test_a_function_call_round_trip_on_anthropic() -> None:
    assert to(MESSAGES, input=TOOL_TURN, tools=[WEATHER])["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "checking"},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}]},
    ]


def test_strict_function_tools_stay_strict_on_both_routes() -> None:
    strict = {**WEATHER, "strict": True}
    assert to(CHAT, tools=[strict])["tools"] == [
        {
            "type": "function",
            "function": {"name": "weather", "description": "d", "parameters": SCHEMA, "strict": True},
        }
    ]
    # Anthropic's strict tool use: the same guarantee, the same field on the tool
    assert to(MESSAGES, tools=[strict])["tools"] == [
        {"name": "weather", "description": "d", "input_schema": SCHEMA, "strict": True}
    ]
    assert to(MESSAGES, tools=[WEATHER])["tools"] == [
        {"name": "weather", "description": "d", "input_schema": SCHEMA}
    ]
    assert refused(MESSAGES, tools=[{**WEATHER, "strict": "yes"}]) == "tools[0].strict"


NAMESPACE = {
    "type": "namespace",
    "name": "files",
    "description": "The workspace files.",
    "tools": [
        {"type": "function", "name": "read", "description": "Read one", "parameters": SCHEMA, "strict": False}
    ],
}


@pytest.mark.parametrize("wire", [CHAT, MESSAGES])
def test_namespace_functions_are_flattened_with_the_namespace_description(wire: WireFormat) -> None:
    tools = to(wire, tools=[WEATHER, NAMESPACE])["tools"]
    names = [t["function"]["name"] if wire is CHAT else t["name"] for t in tools]
    assert names == ["weather", "files__read"]
    description = tools[1]["function"]["description"] if wire is CHAT else tools[1]["description"]
    assert description == "The workspace files.\n\nRead one"


def test_a_namespaced_call_in_the_input_is_flattened_the_same_way() -> None:
    call = {"type": "function_call", "call_id": "c", "namespace": "files", "name": "read", "arguments": "{}"}
    messages = to(CHAT, input=[{"role": "user", "content": "x"}, call], tools=[NAMESPACE])["messages"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "files__read"


def test_a_long_namespaced_name_is_shortened_within_64_characters_the_same_every_time() -> None:
    name = flat_name("mcp__" + "n" * 50, "tool.with.dots")
    assert len(name) <= 64 and name == flat_name("mcp__" + "n" * 50, "tool.with.dots")
    assert name.replace("_", "").replace("-", "").isalnum()


def test_web_search_on_anthropic_is_its_server_tool_with_max_uses() -> None:
    search = {"type": "web_search", "external_web_access": False, "filters": {"allowed_domains": ["a.test"]}}
    translation = translate_responses_request(
        {"model": "m", "input": "q", "tools": [search]}, MESSAGES, SEALER
    )
    assert translation.body["tools"] == [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 10, "allowed_domains": ["a.test"]}
    ]
    assert translation.web_search_max_uses == 10
    assert to(MESSAGES, tools=[search], max_tool_calls=3)["tools"][0]["max_uses"] == 3


def test_web_search_on_chat_is_web_search_options() -> None:
    search = {
        "type": "web_search",
        "search_context_size": "low",
        "user_location": {"type": "approximate", "city": "Rome", "country": "IT"},
    }
    assert to(CHAT, tools=[search])["web_search_options"] == {
        "search_context_size": "low",
        "user_location": {"type": "approximate", "approximate": {"city": "Rome", "country": "IT"}},
    }
    assert (
        refused(CHAT, tools=[{"type": "web_search", "filters": {"allowed_domains": ["a"]}}])
        == "tools[0].filters"
    )


@pytest.mark.parametrize("kind", ["file_search", "code_interpreter", "custom", "mcp", "computer_use_preview"])
def test_tools_no_route_carries_are_refused_naming_them(kind: str) -> None:
    assert refused(CHAT, tools=[{"type": kind}]) == "tools[0].type"
    assert refused(MESSAGES, tools=[{"type": kind}]) == "tools[0].type"


def test_tool_choice_and_parallel_tool_calls() -> None:
    chat = to(
        CHAT, tools=[WEATHER], tool_choice={"type": "function", "name": "weather"}, parallel_tool_calls=False
    )
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert chat["parallel_tool_calls"] is False
    messages = to(MESSAGES, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False)
    assert messages["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert to(
        MESSAGES, tools=[NAMESPACE], tool_choice={"type": "function", "namespace": "files", "name": "read"}
    )["tool_choice"] == {"type": "tool", "name": "files__read"}


def test_sampling_bound_and_identity_fields() -> None:
    common = {"temperature": 0.5, "top_p": 0.9, "user": "u1", "prompt_cache_key": "k"}
    chat = to(CHAT, safety_identifier="u1", **common)
    assert {
        k: chat[k] for k in ("temperature", "top_p", "user", "safety_identifier", "prompt_cache_key")
    } == {
        **common,
        "safety_identifier": "u1",
    }
    messages = to(MESSAGES, **common)
    assert (messages["temperature"], messages["top_p"], messages["metadata"]) == (0.5, 0.9, {"user_id": "u1"})


def test_a_prompt_cache_key_marks_the_system_prompt_and_the_last_message_for_anthropic_caching() -> None:
    body = to(MESSAGES, instructions="sys", prompt_cache_key="session-1")
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in str(to(MESSAGES, instructions="sys"))


def test_the_output_bound_goes_in_each_formats_field_and_chat_streams_ask_for_usage() -> None:
    chat = translate_responses_request({"model": "m", "input": "x", "stream": True}, CHAT, SEALER)
    assert orjson.loads(chat.upstream_body("up", 100, True)) == {
        "model": "up",
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
        "max_completion_tokens": 100,
        "stream_options": {"include_usage": True},
    }
    anthropic = translate_responses_request({"model": "m", "input": "x"}, MESSAGES, SEALER)
    assert orjson.loads(anthropic.upstream_body("up", 100, False))["max_tokens"] == 100


def test_text_format_is_a_chat_response_format() -> None:
    schema = {"type": "json_schema", "name": "city", "schema": SCHEMA, "strict": True}
    assert to(CHAT, text={"format": schema})["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": SCHEMA, "strict": True},
    }
    assert to(CHAT, text={"format": {"type": "json_object"}})["response_format"] == {"type": "json_object"}
    assert "response_format" not in to(CHAT, text={"format": {"type": "text"}})


def test_json_output_is_refused_on_anthropic_and_plain_text_accepted() -> None:
    assert refused(MESSAGES, text={"format": {"type": "json_object"}}) == "text.format"
    assert "output_format" not in to(MESSAGES, text={"format": {"type": "text"}, "verbosity": "medium"})


def test_reasoning_effort_is_reasoning_effort_on_chat() -> None:
    assert to(CHAT, reasoning={"effort": "high", "summary": "auto"})["reasoning_effort"] == "high"
    assert "reasoning_effort" not in to(CHAT, reasoning={"effort": "none"})


def test_reasoning_effort_is_a_thinking_budget_within_the_bound_on_anthropic() -> None:
    translation = translate_responses_request(
        {"model": "m", "input": "x", "reasoning": {"effort": "medium"}}, MESSAGES, SEALER
    )
    assert orjson.loads(translation.upstream_body("up", 32_000, False))["thinking"] == {
        "type": "enabled",
        "budget_tokens": 10_000,
    }
    assert orjson.loads(translation.upstream_body("up", 4_000, False))["thinking"]["budget_tokens"] == 3_999
    assert "thinking" not in orjson.loads(translation.upstream_body("up", 1_000, False))


def test_reasoning_with_a_forced_tool_or_temperature_is_refused_on_anthropic() -> None:
    effort = {"effort": "low"}
    assert refused(MESSAGES, reasoning=effort, tools=[WEATHER], tool_choice="required") == "tool_choice"
    assert refused(MESSAGES, reasoning=effort, temperature=0.2) == "temperature"


def test_what_codex_sends_on_its_first_turn_translates_on_both_routes() -> None:
    codex = {
        "model": "m",
        "instructions": "You are Codex.",
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "<permissions>"}],
            },
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix the bug"}]},
        ],
        "tools": [WEATHER, NAMESPACE, {"type": "web_search", "external_web_access": False}],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199-session",
        "client_metadata": {"originator": "codex_exec"},
        "text": {"verbosity": "medium"},
    }
    for wire in (CHAT, MESSAGES):
        assert translate_responses_request(dict(codex), wire, SEALER).body["messages"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("background", True),
        ("truncation", "auto"),
        ("prompt", {"id": "pmpt_1"}),
        ("conversation", "conv_1"),
        ("top_logprobs", 3),
        ("service_tier", "flex"),
    ],
)
def test_fields_no_route_carries_are_refused_naming_them(field: str, value: object) -> None:
    assert refused(CHAT, **{field: value}) == field
    assert refused(MESSAGES, **{field: value}) == field


def test_gateway_fields_are_accepted_and_not_sent_upstream() -> None:
    fields = {
        "store": True,
        "metadata": {"a": "b"},
        "client_metadata": {"x": 1},
        "previous_response_id": "resp_1",
    }
    for wire in (CHAT, MESSAGES):
        body = to(wire, **fields)
        assert not set(fields) & set(body)


def test_include_names_what_it_cannot_carry() -> None:
    assert "include" not in to(MESSAGES, include=["reasoning.encrypted_content"])
    assert (
        refused(CHAT, include=["reasoning.encrypted_content", "message.output_text.logprobs"]) == "include[1]"
    )


def test_unknown_input_items_are_refused_naming_them() -> None:
    assert refused(CHAT, input=[{"type": "item_reference", "id": "msg_1"}]) == "input[0].type"
    assert refused(MESSAGES, input=[{"type": "local_shell_call", "id": "x"}]) == "input[0].type"


def test_a_web_search_call_item_passed_back_is_not_sent_upstream() -> None:
    items = [
        {"role": "user", "content": "q"},
        {
            "type": "web_search_call",
            "id": "ws_1",
            "status": "completed",
            "action": {"type": "search", "query": "q"},
        },
        {"role": "assistant", "content": "found"},
    ]
    assert len(to(CHAT, input=items)["messages"]) == 2
    assert len(to(MESSAGES, input=items)["messages"]) == 2


def test_an_image_in_a_tool_output_is_refused_on_chat_and_carried_to_anthropic() -> None:
    output = [
        {"type": "input_text", "text": "shot"},
        {"type": "input_image", "image_url": PNG, "detail": "auto"},
    ]
    items = [*TOOL_TURN[:3], {"type": "function_call_output", "call_id": "call_1", "output": output}]
    assert refused(CHAT, input=items) == "input[3].output[1]"
    result = to(MESSAGES, input=items)["messages"][-1]["content"][0]
    assert result["content"][1]["type"] == "image"


def reasoning_item(encrypted: str | None, summary: str = "I thought") -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": summary}],
    }
    if encrypted is not None:
        item["encrypted_content"] = encrypted
    return item


THINKING = [{"type": "thinking", "thinking": "Let me check the weather.", "signature": "sig-abc"}]


def test_a_sealed_reasoning_item_goes_back_to_anthropic_as_its_thinking_block_with_signature() -> None:
    sealed = seal_thinking(SEALER, THINKING)
    assert sealed.startswith(SEALED_PREFIX) and "sig-abc" not in sealed[:0]
    items = [TOOL_TURN[0], reasoning_item(sealed, summary="edited by the client"), *TOOL_TURN[2:]]
    assistant = to(MESSAGES, input=items, tools=[WEATHER])["messages"][1]
    assert assistant["content"][0] == THINKING[0]
    assert assistant["content"][1]["type"] == "tool_use"


def test_a_tampered_reasoning_item_is_refused_naming_its_encrypted_content() -> None:
    sealed = seal_thinking(SEALER, THINKING)
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    items = [TOOL_TURN[0], reasoning_item(tampered), *TOOL_TURN[2:]]
    assert refused(MESSAGES, input=items, tools=[WEATHER]) == "input[1].encrypted_content"


def test_reasoning_items_anthropic_cannot_take_are_not_sent() -> None:
    """Without our sealed thinking (no content, or another provider's) there is no signed block to send."""
    for item in (reasoning_item(None), reasoning_item("gAAAAB-openai-encrypted")):
        assistant = to(MESSAGES, input=[TOOL_TURN[0], item, *TOOL_TURN[2:]], tools=[WEATHER])["messages"][1]
        assert [block["type"] for block in assistant["content"]] == ["tool_use"]


def test_reasoning_items_are_not_sent_to_chat_completions() -> None:
    items = [TOOL_TURN[0], reasoning_item(seal_thinking(SEALER, THINKING)), *TOOL_TURN[2:]]
    assert [m["role"] for m in to(CHAT, input=items, tools=[WEATHER])["messages"]] == [
        "user",
        "assistant",
        "tool",
    ]


def test_tool_prompt_tokens_are_hidden_input_on_anthropic_only() -> None:
    body = {"model": "m", "input": "x", "tools": [WEATHER]}
    assert translate_responses_request(body, MESSAGES, SEALER).hidden_input_tokens == 400
    assert translate_responses_request(body, CHAT, SEALER).hidden_input_tokens == 0
