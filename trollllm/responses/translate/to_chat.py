"""A Responses request as an OpenAI chat completions request (for OpenAI-format providers without the
Responses API).

`developer` messages become `system` messages (what every OpenAI-compatible provider accepts), in place.
An assistant message and the function calls after it are one assistant message with `tool_calls`.
Reasoning items are not sent: chat completions takes no reasoning as input, and what they hold (a summary
of the model's own earlier thinking, or another provider's sealed reasoning) is nothing it can use.
"""

from __future__ import annotations

from typing import Any

from trollllm.responses.translate.inputs import Call, CallOutput, Image, Part, Reasoning, Text, Turn
from trollllm.responses.translate.options import Options
from trollllm.responses.translate.tools import ToolChoice, ToolSet
from trollllm.translate.checks import refuse


def chat_request(
    body: dict[str, Any], turns: list[Turn], tools: ToolSet, choice: ToolChoice | None, options: Options
) -> dict[str, Any]:
    """The chat completions body (without `model` and the output bound, set by the gateway)."""
    if body.get("max_tool_calls") is not None:
        raise refuse("max_tool_calls", "has no equivalent in the chat completions API")
    out: dict[str, Any] = {"messages": _messages(turns)}
    for name in (
        "temperature",
        "top_p",
        "parallel_tool_calls",
        "user",
        "safety_identifier",
        "prompt_cache_key",
    ):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stream"):
        out["stream"] = True
    if tools.functions:
        out["tools"] = [
            _tool(function.name, function.description, function.parameters, function.strict)
            for function in tools.functions
        ]
    if tools.web_search is not None:
        out["web_search_options"] = _web_search_options(tools)
    if choice is not None:
        if choice.mode == "web_search":
            raise refuse("tool_choice", "(forcing web_search) has no equivalent in the chat completions API")
        out["tool_choice"] = (
            {"type": "function", "function": {"name": choice.name}}
            if choice.mode == "function"
            else choice.mode
        )
    if options.effort is not None:
        out["reasoning_effort"] = options.effort
    if options.verbosity is not None:
        out["verbosity"] = options.verbosity
    if options.text_format is not None:
        out["response_format"] = _response_format(options.text_format)
    return out


def _tool(name: str, description: str | None, parameters: dict[str, Any], strict: bool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    if description is not None:
        function["description"] = description
    function["parameters"] = parameters
    if strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def _web_search_options(tools: ToolSet) -> dict[str, Any]:
    search = tools.web_search
    assert search is not None
    if search.allowed_domains is not None:
        raise refuse(f"{search.field}.filters", "has no equivalent in the chat completions API")
    options: dict[str, Any] = {}
    if search.search_context_size is not None:
        options["search_context_size"] = search.search_context_size
    if search.user_location is not None:
        approximate = {k: v for k, v in search.user_location.items() if k != "type" and v is not None}
        options["user_location"] = {"type": "approximate", "approximate": approximate}
    return options


def _response_format(text_format: dict[str, Any]) -> dict[str, Any]:
    if text_format["type"] == "json_object":
        return {"type": "json_object"}
    schema = {
        key: text_format[key] for key in ("name", "description", "schema", "strict") if key in text_format
    }
    return {"type": "json_schema", "json_schema": schema}


def _content(parts: list[Part]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and isinstance(parts[0], Text):
        return parts[0].text
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Text):
            out.append({"type": "text", "text": part.text})
        else:
            out.append({"type": "image_url", "image_url": {"url": part.url, "detail": _detail(part)}})
    return out


def _detail(image: Image) -> str:
    if image.detail == "original":
        raise refuse(f"{image.field}.detail", "(`original`) has no equivalent in the chat completions API")
    return image.detail


def _messages(turns: list[Turn]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    calls_to: dict[str, Any] | None = None  # the assistant message the next function calls join
    for turn in turns:
        if isinstance(turn, Reasoning):
            continue
        if isinstance(turn, Call):
            if calls_to is None:
                calls_to = {"role": "assistant", "content": None}
                messages.append(calls_to)
            function = {"name": turn.name, "arguments": turn.arguments}
            calls_to.setdefault("tool_calls", []).append(
                {"id": turn.call_id, "type": "function", "function": function}
            )
            continue
        calls_to = None
        if isinstance(turn, CallOutput):
            messages.append({"role": "tool", "tool_call_id": turn.call_id, "content": _tool_output(turn)})
        elif turn.role == "assistant":
            calls_to = {
                "role": "assistant",
                "content": "".join(part.text for part in turn.parts if isinstance(part, Text)),
            }
            messages.append(calls_to)
        else:
            messages.append({"role": turn.role, "content": _content(turn.parts)})
    return messages


def _tool_output(turn: CallOutput) -> str | list[dict[str, Any]]:
    if isinstance(turn.output, str):
        return turn.output
    for k, part in enumerate(turn.output):
        if isinstance(part, Image):
            raise refuse(
                f"{turn.field}.output[{k}]",
                "(an image in a tool result) has no equivalent in chat completions",
            )
    return [{"type": "text", "text": part.text} for part in turn.output if isinstance(part, Text)]
