"""Answers translated back to the caller's format: whole replies, usage, stop reasons and errors.

Billing never reads the translated usage: it is computed from the upstream's own usage (`trollllm.money`),
so Anthropic cache writes keep their price even where OpenAI's usage has no field for them.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from trollllm.crypto import mask_secrets
from trollllm.money import TokenUsage, usage_from_anthropic, usage_from_openai


class UntranslatableReply(Exception):
    """The upstream answered 2xx with a body that is not the JSON object its format promises."""


FINISH_OF_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
STOP_OF_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# An Anthropic caller expects the error type Anthropic gives each status.
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def openai_usage(usage: TokenUsage) -> dict[str, Any]:
    """OpenAI usage for billed usage: cache hits and writes are prompt tokens, hits also `cached_tokens`."""
    prompt = usage.input_tokens + usage.cache_hit_tokens + usage.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_hit_tokens},
    }


def anthropic_usage(usage: TokenUsage) -> dict[str, Any]:
    """Anthropic usage for billed usage: the three input counts are disjoint (input net of cache)."""
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_hit_tokens,
        "output_tokens": usage.output_tokens,
    }


def _object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UntranslatableReply from exc
    if not isinstance(body, dict):
        raise UntranslatableReply
    return body


def openai_reply(raw: bytes, client_model: str) -> tuple[bytes, TokenUsage | None]:
    """An Anthropic `message` as an OpenAI `chat.completion`, and its billed usage (None if absent)."""
    message = _object(raw)
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "thinking":
            thinking.append(str(block.get("thinking", "")))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thinking:
        reply["reasoning_content"] = "".join(thinking)
    if calls:
        reply["tool_calls"] = calls
    usage = message.get("usage")
    billed = usage_from_anthropic(usage) if isinstance(usage, dict) else None
    completion: dict[str, Any] = {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": client_model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": FINISH_OF_STOP.get(str(message.get("stop_reason")), "stop"),
            }
        ],
    }
    if billed is not None:
        completion["usage"] = openai_usage(billed)
    return orjson.dumps(completion), billed


def anthropic_reply(raw: bytes, client_model: str) -> tuple[bytes, TokenUsage | None]:
    """An OpenAI `chat.completion` (one choice) as an Anthropic `message`, and its billed usage."""
    completion = _object(raw)
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    found = choice.get("message")
    reply: dict[str, Any] = found if isinstance(found, dict) else {}
    content: list[dict[str, Any]] = []
    for name in ("content", "refusal"):
        if isinstance(reply.get(name), str) and reply[name]:
            content.append({"type": "text", "text": reply[name]})
    for call in reply.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            content.append(
                {
                    "type": "tool_use",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "input": tool_input(function.get("arguments")),
                }
            )
    usage = completion.get("usage")
    billed = usage_from_openai(usage) if isinstance(usage, dict) else None
    message: dict[str, Any] = {
        "id": completion.get("id"),
        "type": "message",
        "role": "assistant",
        "model": client_model,
        "content": content,
        "stop_reason": STOP_OF_FINISH.get(str(choice.get("finish_reason")), "end_turn"),
        "stop_sequence": None,
    }
    if billed is not None:
        message["usage"] = anthropic_usage(billed)
    return orjson.dumps(message), billed


def tool_input(arguments: object) -> dict[str, Any]:
    """A tool call's JSON arguments as an Anthropic `input` object (arguments that are not a JSON object
    are kept whole under `arguments`, so nothing the model wrote is lost)."""
    if not isinstance(arguments, str) or not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"arguments": arguments}


def error_message(raw: bytes) -> tuple[str, str | None]:
    """(message, type) of an upstream error body in either format; the raw text when it is not one."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        kind = error.get("type")
        return error["message"], kind if isinstance(kind, str) else None
    return raw.decode(errors="replace")[:2000] or "The upstream answered with an error", None


def openai_error(status: int, raw: bytes, *, message: str | None = None) -> bytes:
    """An upstream error body in the OpenAI shape with the upstream's type, keys masked; `message`
    replaces the upstream's."""
    upstream_message, kind = error_message(raw)
    kind = kind or ("server_error" if status >= 500 else "invalid_request_error")
    text = mask_secrets(upstream_message) if message is None else message
    return orjson.dumps({"error": {"message": text, "type": kind, "param": None, "code": kind}})


def anthropic_error(status: int, raw: bytes, *, message: str | None = None) -> bytes:
    """An upstream (OpenAI) error body in the Anthropic shape, keys masked, typed by its status; `message`
    replaces the upstream's."""
    text = mask_secrets(error_message(raw)[0]) if message is None else message
    return orjson.dumps({"type": "error", "error": {"type": anthropic_error_type(status), "message": text}})


def anthropic_error_type(status: int) -> str:
    """The Anthropic error type of an HTTP status."""
    return _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
