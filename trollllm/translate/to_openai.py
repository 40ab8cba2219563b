"""An Anthropic messages request as an OpenAI chat completions request.

The mirror of `to_anthropic`: structure is kept where both formats have it, and every field without an
OpenAI equivalent is a 400 naming it. `cache_control` marks are accepted: OpenAI caches prompt prefixes
on its own, so the request means the same without them.
"""

from __future__ import annotations

from typing import Any

import orjson

from trollllm.errors import InvalidRequest
from trollllm.translate.checks import as_list, as_object, as_text, refuse, refuse_unknown

_MAPPED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "stream",
        "temperature",
        "top_p",
        "stop_sequences",
        "tools",
        "tool_choice",
        "metadata",
    }
)
_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
_TEXT = frozenset({"type", "text", "cache_control"})


def openai_request(body: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI chat completions body for an Anthropic messages body (without `model` and the output
    bound, which the gate sets); 400 naming the first field that cannot be expressed."""
    for key, value in body.items():
        if value is None or key in _MAPPED:
            continue
        if key == "thinking" and isinstance(value, dict) and value.get("type") == "disabled":
            continue
        raise refuse(key)
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        content = system if isinstance(system, str) else _text_parts(system, "system")
        messages.append({"role": "system", "content": content})
    for i, message in enumerate(as_list(body["messages"], "messages")):
        messages.extend(_message(message, f"messages[{i}]"))
    out: dict[str, Any] = {"messages": messages}
    for name in ("temperature", "top_p", "stream"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences") is not None:
        out["stop"] = as_list(body["stop_sequences"], "stop_sequences")
    if body.get("tools") is not None:
        out["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(as_list(body["tools"], "tools"))]
    if body.get("tool_choice") is not None:
        _tool_choice(as_object(body["tool_choice"], "tool_choice"), out)
    metadata = body.get("metadata")
    if metadata is not None:
        metadata = as_object(metadata, "metadata")
        refuse_unknown(metadata, frozenset({"user_id"}), "metadata.")
        if metadata.get("user_id") is not None:
            out["user"] = as_text(metadata["user_id"], "metadata.user_id")
    return out


def _text_parts(content: object, field: str) -> list[dict[str, Any]]:
    parts = []
    for j, block in enumerate(as_list(content, field)):
        block = as_object(block, f"{field}[{j}]")
        if block.get("type") != "text":
            raise refuse(f"{field}[{j}].type", f"`{block.get('type')}` has no equivalent here")
        refuse_unknown(block, _TEXT, f"{field}[{j}].")
        parts.append({"type": "text", "text": as_text(block.get("text"), f"{field}[{j}].text")})
    return parts


def _message(item: object, field: str) -> list[dict[str, Any]]:
    """One Anthropic message as OpenAI messages: a user turn's `tool_result` blocks become `tool`
    messages (first, as Anthropic requires them first), the rest one user message."""
    message = as_object(item, field)
    refuse_unknown(message, frozenset({"role", "content"}), f"{field}.")
    role = message.get("role")
    content = message.get("content")
    if role == "assistant":
        return [_assistant(content, f"{field}.content")]
    if role != "user":
        raise InvalidRequest(f"`{field}.role` must be user or assistant", field=f"{field}.role")
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(as_list(content, f"{field}.content")):
        where = f"{field}.content[{j}]"
        block = as_object(block, where)
        kind = block.get("type")
        if kind == "tool_result":
            out.append(_tool_result(block, where))
        elif kind == "text":
            refuse_unknown(block, _TEXT, f"{where}.")
            parts.append({"type": "text", "text": as_text(block.get("text"), f"{where}.text")})
        elif kind == "image":
            refuse_unknown(block, frozenset({"type", "source", "cache_control"}), f"{where}.")
            parts.append(
                {"type": "image_url", "image_url": _image_url(block.get("source"), f"{where}.source")}
            )
        else:
            raise refuse(f"{where}.type", f"`{kind}` has no equivalent in the OpenAI chat completions API")
    if parts or not out:
        out.append({"role": "user", "content": parts})
    return out


def _image_url(source: object, field: str) -> dict[str, Any]:
    source = as_object(source, field)
    kind = source.get("type")
    if kind == "base64":
        refuse_unknown(source, frozenset({"type", "media_type", "data"}), f"{field}.")
        media_type = as_text(source.get("media_type"), f"{field}.media_type")
        return {"url": f"data:{media_type};base64,{as_text(source.get('data'), f'{field}.data')}"}
    if kind == "url":
        refuse_unknown(source, frozenset({"type", "url"}), f"{field}.")
        return {"url": as_text(source.get("url"), f"{field}.url")}
    raise refuse(f"{field}.type", f"`{kind}` has no equivalent in the OpenAI chat completions API")


def _tool_result(block: dict[str, Any], field: str) -> dict[str, Any]:
    refuse_unknown(
        block, frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"}), f"{field}."
    )
    if block.get("is_error"):
        raise refuse(f"{field}.is_error", "(a tool error flag) has no equivalent in OpenAI tool messages")
    content = block.get("content", "")
    return {
        "role": "tool",
        "tool_call_id": as_text(block.get("tool_use_id"), f"{field}.tool_use_id"),
        "content": content if isinstance(content, str) else _text_parts(content, f"{field}.content"),
    }


def _assistant(content: object, field: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(as_list(content, field)):
        where = f"{field}[{j}]"
        block = as_object(block, where)
        kind = block.get("type")
        if kind == "text":
            refuse_unknown(block, _TEXT, f"{where}.")
            parts.append({"type": "text", "text": as_text(block.get("text"), f"{where}.text")})
        elif kind == "tool_use":
            refuse_unknown(block, frozenset({"type", "id", "name", "input", "cache_control"}), f"{where}.")
            arguments = orjson.dumps(as_object(block.get("input"), f"{where}.input")).decode()
            calls.append(
                {
                    "id": as_text(block.get("id"), f"{where}.id"),
                    "type": "function",
                    "function": {"name": as_text(block.get("name"), f"{where}.name"), "arguments": arguments},
                }
            )
        else:
            raise refuse(f"{where}.type", f"`{kind}` has no equivalent in the OpenAI chat completions API")
    message: dict[str, Any] = {"role": "assistant", "content": parts or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool(tool: object, field: str) -> dict[str, Any]:
    tool = as_object(tool, field)
    if tool.get("type", "custom") != "custom":
        raise refuse(
            f"{field}.type", f"`{tool.get('type')}` has no equivalent in the OpenAI chat completions API"
        )
    refuse_unknown(
        tool, frozenset({"type", "name", "description", "input_schema", "cache_control"}), f"{field}."
    )
    function: dict[str, Any] = {"name": as_text(tool.get("name"), f"{field}.name")}
    if tool.get("description") is not None:
        function["description"] = as_text(tool["description"], f"{field}.description")
    function["parameters"] = as_object(tool.get("input_schema"), f"{field}.input_schema")
    return {"type": "function", "function": function}


def _tool_choice(choice: dict[str, Any], out: dict[str, Any]) -> None:
    refuse_unknown(choice, frozenset({"type", "name", "disable_parallel_tool_use"}), "tool_choice.")
    kind = choice.get("type")
    if kind == "tool":
        name = as_text(choice.get("name"), "tool_choice.name")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    elif isinstance(kind, str) and kind in _CHOICES:
        out["tool_choice"] = _CHOICES[kind]
    else:
        raise InvalidRequest("`tool_choice.type` must be auto, any, tool or none", field="tool_choice.type")
    if choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False
