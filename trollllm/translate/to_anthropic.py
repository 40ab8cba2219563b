"""An OpenAI chat completions request as an Anthropic messages request.

Structure is kept where both formats have it (a string stays a string, a list of parts a list of blocks),
so the translation back (`to_openai`) gives the request again. Every field without an Anthropic
equivalent is a 400 naming it; a field set to its no-op default (`n: 1`, `logprobs: false`, …) is
accepted, since leaving it out means the same.
"""

from __future__ import annotations

from typing import Any

import orjson

from trollllm.errors import InvalidRequest
from trollllm.translate.checks import as_list, as_object, as_text, refuse, refuse_unknown

# Top-level fields translated below (`max_tokens`/`max_completion_tokens` become the bound the gate sets).
_MAPPED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "user",
        "safety_identifier",
    }
)
# Fields whose value here means "nothing": accepted, and nothing to carry over.
_NO_OP: dict[str, object] = {
    "n": 1,
    "logprobs": False,
    "frequency_penalty": 0,
    "presence_penalty": 0,
    "store": False,
}
_CHOICES = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}


def anthropic_request(body: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic messages body for an OpenAI chat completions body (without `model`/`max_tokens`,
    which the gate sets); 400 naming the first field that cannot be expressed."""
    for key, value in body.items():
        if value is None or key in _MAPPED:
            continue
        if key in _NO_OP and value == _NO_OP[key] and not isinstance(value, dict | list):
            continue
        raise refuse(key)
    out: dict[str, Any] = {}
    system, messages = _messages(as_list(body["messages"], "messages"))
    if system is not None:
        out["system"] = system
    out["messages"] = messages
    for name in ("temperature", "top_p", "stream"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop is not None:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else as_list(stop, "stop")
    options = body.get("stream_options")
    if options is not None:
        refuse_unknown(as_object(options, "stream_options"), frozenset({"include_usage"}), "stream_options.")
    if body.get("tools") is not None:
        out["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(as_list(body["tools"], "tools"))]
    choice = anthropic_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None:
        out["tool_choice"] = choice
    response_format = body.get("response_format")
    if response_format is not None and as_object(response_format, "response_format").get("type") != "text":
        raise refuse("response_format", "(JSON mode) has no equivalent in the Anthropic messages API")
    user = anthropic_user_id(body.get("user"), body.get("safety_identifier"))
    if user is not None:
        out["metadata"] = {"user_id": user}
    return out


def anthropic_user_id(user: object, safety_identifier: object) -> str | None:
    """The one `metadata.user_id` for OpenAI's `user` and `safety_identifier` (400 when they differ)."""
    if user is not None and safety_identifier is not None and user != safety_identifier:
        raise refuse("safety_identifier", "and `user` differ; the Anthropic API has one `metadata.user_id`")
    value = user if user is not None else safety_identifier
    if value is None:
        return None
    return as_text(value, "user" if user is not None else "safety_identifier")


def _messages(items: list[Any]) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """(the system prompt, the messages): leading system/developer messages become `system`, runs of
    `tool` messages one user message of `tool_result` blocks."""
    systems: list[tuple[str, object]] = []
    out: list[dict[str, Any]] = []
    tool_results: list[dict[str, Any]] | None = None  # the blocks of the user message being filled
    for i, item in enumerate(items):
        field = f"messages[{i}]"
        message = as_object(item, field)
        role = message.get("role")
        if role in ("system", "developer"):
            if out:
                raise refuse(f"{field}.role", "(a system message after the first turn) has no equivalent")
            refuse_unknown(message, frozenset({"role", "content"}), f"{field}.")
            systems.append((field, message.get("content")))
            continue
        if role == "tool":
            refuse_unknown(message, frozenset({"role", "content", "tool_call_id"}), f"{field}.")
            block = {
                "type": "tool_result",
                "tool_use_id": as_text(message.get("tool_call_id"), f"{field}.tool_call_id"),
                "content": _text_content(message.get("content"), f"{field}.content"),
            }
            if tool_results is None:
                tool_results = [block]
                out.append({"role": "user", "content": tool_results})
            else:
                tool_results.append(block)
            continue
        tool_results = None
        if role == "user":
            refuse_unknown(message, frozenset({"role", "content"}), f"{field}.")
            out.append({"role": "user", "content": _user_content(message.get("content"), f"{field}.content")})
        elif role == "assistant":
            out.append({"role": "assistant", "content": _assistant_content(message, field)})
        else:
            raise refuse(f"{field}.role", f"`{role}` has no equivalent")
    return _system(systems), out


def _system(systems: list[tuple[str, object]]) -> str | list[dict[str, Any]] | None:
    if not systems:
        return None
    if len(systems) == 1 and isinstance(systems[0][1], str):
        return systems[0][1]
    blocks: list[dict[str, Any]] = []
    for field, content in systems:
        if isinstance(content, str):
            blocks.append({"type": "text", "text": content})
        else:
            blocks.extend(_text_parts(content, f"{field}.content"))
    return blocks


def _text_content(content: object, field: str) -> str | list[dict[str, Any]]:
    """A string as is, or a list of text parts as text blocks."""
    if isinstance(content, str):
        return content
    return _text_parts(content, field)


def _text_parts(content: object, field: str) -> list[dict[str, Any]]:
    blocks = []
    for j, part in enumerate(as_list(content, field)):
        part = as_object(part, f"{field}[{j}]")
        if part.get("type") != "text":
            raise refuse(f"{field}[{j}].type", f"`{part.get('type')}` has no equivalent here")
        refuse_unknown(part, frozenset({"type", "text"}), f"{field}[{j}].")
        blocks.append({"type": "text", "text": as_text(part.get("text"), f"{field}[{j}].text")})
    return blocks


def _user_content(content: object, field: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    blocks = []
    for j, part in enumerate(as_list(content, field)):
        where = f"{field}[{j}]"
        part = as_object(part, where)
        kind = part.get("type")
        if kind == "text":
            refuse_unknown(part, frozenset({"type", "text"}), f"{where}.")
            blocks.append({"type": "text", "text": as_text(part.get("text"), f"{where}.text")})
        elif kind == "image_url":
            refuse_unknown(part, frozenset({"type", "image_url"}), f"{where}.")
            blocks.append(_image(part.get("image_url"), f"{where}.image_url"))
        else:
            raise refuse(f"{where}.type", f"`{kind}` has no equivalent in the Anthropic messages API")
    return blocks


def _image(image: object, field: str) -> dict[str, Any]:
    """An `image_url` part as an image block: a `data:` URL is inline base64, any other URL by URL."""
    image = {"url": image} if isinstance(image, str) else as_object(image, field)
    refuse_unknown(image, frozenset({"url", "detail"}), f"{field}.")
    if image.get("detail", "auto") not in (None, "auto"):
        raise refuse(f"{field}.detail")
    return {
        "type": "image",
        "source": image_source(as_text(image.get("url"), f"{field}.url"), f"{field}.url"),
    }


def image_source(url: str, field: str) -> dict[str, Any]:
    """An image URL as an Anthropic image `source`: a `data:` URL is inline base64, any other URL by URL."""
    if not url.startswith("data:"):
        return {"type": "url", "url": url}
    header, comma, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not comma or encoding != "base64" or not media_type:
        raise InvalidRequest(f"`{field}` must be a base64 data URL or an http(s) URL", field=field)
    return {"type": "base64", "media_type": media_type, "data": data}


def _assistant_content(message: dict[str, Any], field: str) -> str | list[dict[str, Any]]:
    refuse_unknown(message, frozenset({"role", "content", "tool_calls"}), f"{field}.")
    content = message.get("content")
    calls = message.get("tool_calls")
    if not calls:
        if content is None:
            return []
        return _text_content(content, f"{field}.content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif content is not None:
        blocks.extend(_text_parts(content, f"{field}.content"))
    for k, call in enumerate(as_list(calls, f"{field}.tool_calls")):
        where = f"{field}.tool_calls[{k}]"
        call = as_object(call, where)
        refuse_unknown(call, frozenset({"id", "type", "function"}), f"{where}.")
        if call.get("type", "function") != "function":
            raise refuse(f"{where}.type", f"`{call.get('type')}` has no equivalent here")
        function = as_object(call.get("function"), f"{where}.function")
        refuse_unknown(function, frozenset({"name", "arguments"}), f"{where}.function.")
        arguments = as_text(function.get("arguments"), f"{where}.function.arguments")
        try:
            tool_input = orjson.loads(arguments) if arguments else {}
        except orjson.JSONDecodeError:
            tool_input = None
        if not isinstance(tool_input, dict):
            raise InvalidRequest(
                f"`{where}.function.arguments` must be a JSON object to become an Anthropic tool_use input",
                field=f"{where}.function.arguments",
            )
        blocks.append(
            {
                "type": "tool_use",
                "id": as_text(call.get("id"), f"{where}.id"),
                "name": as_text(function.get("name"), f"{where}.function.name"),
                "input": tool_input,
            }
        )
    return blocks


def _tool(tool: object, field: str) -> dict[str, Any]:
    tool = as_object(tool, field)
    refuse_unknown(tool, frozenset({"type", "function"}), f"{field}.")
    if tool.get("type") != "function":
        raise refuse(f"{field}.type", f"`{tool.get('type')}` has no equivalent in the Anthropic messages API")
    function = as_object(tool.get("function"), f"{field}.function")
    refuse_unknown(function, frozenset({"name", "description", "parameters", "strict"}), f"{field}.function.")
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequest(f"`{field}.function.strict` must be a boolean", field=f"{field}.function.strict")
    out: dict[str, Any] = {"name": as_text(function.get("name"), f"{field}.function.name")}
    if function.get("description") is not None:
        out["description"] = as_text(function["description"], f"{field}.function.description")
    parameters = function.get("parameters")
    out["input_schema"] = (
        {"type": "object", "properties": {}}
        if parameters is None
        else as_object(parameters, f"{field}.function.parameters")
    )
    if strict:  # Anthropic's strict tool use: the same guarantee (inputs sampled to the schema)
        out["strict"] = True
    return out


def anthropic_tool_choice(choice: object, parallel: object) -> dict[str, object] | None:
    """An OpenAI `tool_choice` and `parallel_tool_calls` as an Anthropic `tool_choice` (None: neither)."""
    if parallel is not None and not isinstance(parallel, bool):
        raise InvalidRequest("`parallel_tool_calls` must be a boolean", field="parallel_tool_calls")
    out: dict[str, object] | None
    if choice is None:
        out = None
    elif isinstance(choice, str):
        if choice not in _CHOICES:
            raise InvalidRequest(
                "`tool_choice` must be auto, none, required or a function", field="tool_choice"
            )
        out = dict(_CHOICES[choice])
    else:
        choice = as_object(choice, "tool_choice")
        refuse_unknown(choice, frozenset({"type", "function"}), "tool_choice.")
        if choice.get("type") != "function":
            raise refuse("tool_choice.type", f"`{choice.get('type')}` has no equivalent here")
        function = as_object(choice.get("function"), "tool_choice.function")
        refuse_unknown(function, frozenset({"name"}), "tool_choice.function.")
        out = {"type": "tool", "name": as_text(function.get("name"), "tool_choice.function.name")}
    if parallel is False:
        if out is None:
            out = {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out
