"""A Responses request as an Anthropic messages request.

Leading system and developer messages (and `instructions`) are the `system` prompt; one that comes later
stays where it is, as user text (Anthropic has no system turn mid-conversation, and moving it to the top
would change what the model reads before the earlier turns and break the prompt cache). Consecutive
assistant-side items (reasoning, messages, function calls) are one assistant message, consecutive
user-side items (messages, function call outputs) one user message.

A reasoning item carries its thinking blocks, sealed by this gateway (`sealing`); one without them, or
sealed by another provider, holds nothing Anthropic accepts (a thinking block needs its signature), so it
is not sent. `reasoning.effort` becomes extended thinking, its budget set with the output bound
(`thinking_budget`). `prompt_cache_key` asks for caching, which Anthropic does only at marked blocks: the
system prompt and the last message are marked.
"""

from __future__ import annotations

from typing import Any

import orjson

from trollllm.errors import InvalidRequest
from trollllm.responses.translate.inputs import Call, CallOutput, Image, Message, Part, Reasoning, Text, Turn
from trollllm.responses.translate.options import Options
from trollllm.responses.translate.sealing import Sealer, unseal_thinking
from trollllm.responses.translate.tools import ToolChoice, ToolSet
from trollllm.translate.checks import refuse
from trollllm.translate.to_anthropic import anthropic_tool_choice, anthropic_user_id, image_source

WEB_SEARCH_MAX_USES = 10
"""Searches allowed per request when `max_tool_calls` does not say (the bound the hold is sized by)."""
# Thinking budget per `reasoning.effort`, in tokens (Anthropic's minimum budget is 1,024).
THINKING_BUDGETS = {"minimal": 1024, "low": 4096, "medium": 10_000, "high": 24_000, "xhigh": 32_000}
MIN_THINKING_BUDGET = 1024
_CACHE = {"type": "ephemeral"}


def messages_request(
    body: dict[str, Any],
    turns: list[Turn],
    tools: ToolSet,
    choice: ToolChoice | None,
    options: Options,
    sealer: Sealer,
) -> dict[str, Any]:
    """The Anthropic messages body (without `model`, `max_tokens` and `thinking`, set with the bound)."""
    if options.text_format is not None:
        raise refuse("text.format", "(JSON output) has no equivalent in the Anthropic messages API")
    if options.verbosity not in (None, "medium"):
        raise refuse("text.verbosity", "has no equivalent in the Anthropic messages API")
    system, messages = _conversation(turns, sealer)
    out: dict[str, Any] = {}
    if system:
        out["system"] = system
    out["messages"] = messages
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            if options.effort is not None and not (name == "temperature" and body[name] == 1):
                raise refuse(name, "cannot be combined with `reasoning.effort` on this model")
            out[name] = body[name]
    if body.get("stream"):
        out["stream"] = True
    upstream_tools = [
        _tool(function.name, function.description, function.parameters, function.strict, function.field)
        for function in tools.functions
    ]
    if tools.web_search is not None:
        upstream_tools.append(_web_search(tools, body.get("max_tool_calls")))
    elif body.get("max_tool_calls") is not None:
        raise refuse("max_tool_calls", "applies to built-in tools; this request has none")
    if upstream_tools:
        out["tools"] = upstream_tools
    tool_choice = _tool_choice(choice, body.get("parallel_tool_calls"), options)
    if tool_choice is not None:
        out["tool_choice"] = tool_choice
    user = anthropic_user_id(body.get("user"), body.get("safety_identifier"))
    if user is not None:
        out["metadata"] = {"user_id": user}
    if body.get("prompt_cache_key") is not None:
        _mark_cache(out)
    return out


def thinking_budget(effort: str, max_tokens: int) -> int | None:
    """The thinking budget for `effort` within `max_tokens` (which counts thinking); None when the bound
    leaves no room for Anthropic's minimum budget."""
    if max_tokens <= MIN_THINKING_BUDGET:
        return None
    return max(MIN_THINKING_BUDGET, min(THINKING_BUDGETS[effort], max_tokens - 1))


def _conversation(turns: list[Turn], sealer: Sealer) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for turn in turns:
        if isinstance(turn, Message) and turn.role == "system" and not messages:
            system.extend(_blocks(turn.parts))
            continue
        role = (
            "assistant"
            if isinstance(turn, Call | Reasoning) or (isinstance(turn, Message) and turn.role == "assistant")
            else "user"
        )
        blocks = _turn_blocks(turn, sealer)
        if not blocks:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    return system, messages


def _turn_blocks(turn: Turn, sealer: Sealer) -> list[dict[str, Any]]:
    if isinstance(turn, Message):
        return _blocks(turn.parts)
    if isinstance(turn, Call):
        try:
            arguments = orjson.loads(turn.arguments) if turn.arguments else {}
        except orjson.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            raise InvalidRequest(
                f"`{turn.field}.arguments` must be a JSON object to become an Anthropic tool_use input",
                field=f"{turn.field}.arguments",
            )
        return [{"type": "tool_use", "id": turn.call_id, "name": turn.name, "input": arguments}]
    if isinstance(turn, CallOutput):
        content: str | list[dict[str, Any]] = (
            turn.output if isinstance(turn.output, str) else _blocks(turn.output)
        )
        return [{"type": "tool_result", "tool_use_id": turn.call_id, "content": content}]
    if turn.encrypted_content is None:
        return []
    return unseal_thinking(sealer, turn.encrypted_content, f"{turn.field}.encrypted_content") or []


def _blocks(parts: list[Part]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Text):
            if part.text:  # Anthropic refuses empty text blocks; an empty one says nothing
                blocks.append({"type": "text", "text": part.text})
        else:
            blocks.append(_image(part))
    return blocks


def _image(image: Image) -> dict[str, Any]:
    # Anthropic reads every image at its full supported size: `auto`, `high` and `original` all ask that;
    # `low` (a cheaper, downscaled read) it cannot do.
    if image.detail == "low":
        raise refuse(f"{image.field}.detail", "(`low`) has no equivalent in the Anthropic messages API")
    return {"type": "image", "source": image_source(image.url, f"{image.field}.image_url")}


def _tool(
    name: str, description: str | None, parameters: dict[str, Any], strict: bool, field: str
) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": name}
    if description is not None:
        tool["description"] = description
    tool["input_schema"] = parameters
    if strict:  # Anthropic's strict tool use: the same guarantee (inputs sampled to the schema)
        tool["strict"] = True
    return tool


def _web_search(tools: ToolSet, max_tool_calls: object) -> dict[str, Any]:
    search = tools.web_search
    assert search is not None
    if search.search_context_size not in (None, "medium"):
        raise refuse(f"{search.field}.search_context_size", "has no equivalent in the Anthropic messages API")
    if max_tool_calls is not None and (not isinstance(max_tool_calls, int) or max_tool_calls < 1):
        raise InvalidRequest("`max_tool_calls` must be a positive integer", field="max_tool_calls")
    tool: dict[str, Any] = {
        "type": "web_search_20250305",
        "name": "web_search",
        "max_uses": max_tool_calls if isinstance(max_tool_calls, int) else WEB_SEARCH_MAX_USES,
    }
    if search.allowed_domains is not None:
        tool["allowed_domains"] = search.allowed_domains
    if search.user_location is not None:
        location = {k: v for k, v in search.user_location.items() if v is not None}
        tool["user_location"] = {**location, "type": "approximate"}
    return tool


def _tool_choice(choice: ToolChoice | None, parallel: object, options: Options) -> dict[str, object] | None:
    if choice is not None and options.effort is not None and choice.mode not in ("auto", "none"):
        raise refuse(
            "tool_choice", "(forcing a tool) cannot be combined with `reasoning.effort` on this model"
        )
    if choice is not None and choice.mode == "web_search":
        out = anthropic_tool_choice({"type": "function", "function": {"name": "web_search"}}, parallel)
    elif choice is not None and choice.mode == "function":
        out = anthropic_tool_choice({"type": "function", "function": {"name": choice.name}}, parallel)
    else:
        out = anthropic_tool_choice(None if choice is None else choice.mode, parallel)
    return out


def _mark_cache(body: dict[str, Any]) -> None:
    if body.get("system"):
        body["system"][-1]["cache_control"] = _CACHE
    if body["messages"] and body["messages"][-1]["content"]:
        last = body["messages"][-1]["content"][-1]
        if last.get("type") not in ("thinking", "redacted_thinking"):
            last["cache_control"] = _CACHE
