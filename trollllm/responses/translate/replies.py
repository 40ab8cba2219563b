"""Whole upstream answers (a chat completion, an Anthropic message) as a Response, and their billed usage."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from trollllm.money import TokenUsage, usage_from_anthropic, usage_from_openai
from trollllm.responses.translate.output import ResponseOutput, responses_usage
from trollllm.translate.replies import UntranslatableReply

# Why an answer stopped short, as the Responses API says it (`incomplete_details.reason`).
INCOMPLETE_OF_FINISH = {"length": "max_output_tokens", "content_filter": "content_filter"}
INCOMPLETE_OF_STOP = {
    "max_tokens": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "refusal": "content_filter",
}


def _object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UntranslatableReply from exc
    if not isinstance(body, dict):
        raise UntranslatableReply
    return body


def billed_anthropic_usage(usage: dict[str, Any]) -> TokenUsage:
    """Billed usage from Anthropic's `usage`, with the web searches it reports (`server_tool_use`)."""
    billed = usage_from_anthropic(usage)
    server = usage.get("server_tool_use")
    searches = server.get("web_search_requests") if isinstance(server, dict) else None
    if isinstance(searches, int) and not isinstance(searches, bool) and searches > 0:
        billed = dataclasses.replace(billed, web_search_calls=searches)
    return billed


def reasoning_tokens_of(usage: dict[str, Any]) -> int:
    """Reasoning tokens from an OpenAI `usage` (0 when it does not say)."""
    details = usage.get("completion_tokens_details")
    count = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0


def url_citation(url: object, title: object, start: int, end: int) -> dict[str, Any]:
    """A Responses `url_citation` annotation."""
    return {"type": "url_citation", "url": url, "title": title or "", "start_index": start, "end_index": end}


def finish(output: ResponseOutput, reason: str | None, usage: dict[str, Any] | None) -> bytes:
    """The final Response JSON."""
    _, final = output.finish("incomplete" if reason else "completed", usage, reason)
    return orjson.dumps(final["response"])


def reply_from_chat(raw: bytes, output: ResponseOutput, searched: bool) -> tuple[bytes, TokenUsage | None]:
    """A chat completion as a Response; `searched`: the request had `web_search_options` (one search, by
    OpenAI's pricing of search models, which do not report it)."""
    completion = _object(raw)
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    assert isinstance(message, dict)
    thinking = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(thinking, str) and thinking:
        output.reasoning(thinking)
    for name in ("content", "refusal"):
        if isinstance(message.get(name), str) and message[name]:
            output.text(message[name])
    for annotation in message.get("annotations") or ():
        cited = annotation.get("url_citation") if isinstance(annotation, dict) else None
        if isinstance(cited, dict):
            output.annotation(
                url_citation(
                    cited.get("url"),
                    cited.get("title"),
                    cited.get("start_index", 0),
                    cited.get("end_index", 0),
                )
            )
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            output.function_call(str(call.get("id")), str(function.get("name")))
            output.arguments(str(function.get("arguments") or ""))
    usage = completion.get("usage")
    billed = None
    shown = None
    if isinstance(usage, dict):
        billed = usage_from_openai(usage)
        if searched:
            billed = dataclasses.replace(billed, web_search_calls=1)
        shown = responses_usage(billed, reasoning_tokens_of(usage))
    reason = INCOMPLETE_OF_FINISH.get(str(choice.get("finish_reason")))
    return finish(output, reason, shown), billed


def reply_from_messages(raw: bytes, output: ResponseOutput) -> tuple[bytes, TokenUsage | None]:
    """An Anthropic message as a Response."""
    message = _object(raw)
    for block in message.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "thinking":
            output.reasoning(str(block.get("thinking", "")))
            output.thinking_block(
                {
                    "type": "thinking",
                    "thinking": block.get("thinking", ""),
                    "signature": block.get("signature", ""),
                }
            )
            output.close()
        elif kind == "redacted_thinking":
            output.open_reasoning()
            output.thinking_block({"type": "redacted_thinking", "data": block.get("data", "")})
            output.close()
        elif kind == "text":
            _text_block(output, block)
        elif kind == "tool_use":
            output.function_call(str(block.get("id")), str(block.get("name")))
            output.arguments(orjson.dumps(block.get("input") or {}).decode())
            output.close()
        elif kind == "server_tool_use" and block.get("name") == "web_search":
            output.web_search()
            query = block.get("input", {}).get("query") if isinstance(block.get("input"), dict) else None
            if isinstance(query, str):
                output.web_search_query(query)
            output.close()
    usage = message.get("usage")
    billed = billed_anthropic_usage(usage) if isinstance(usage, dict) else None
    reason = INCOMPLETE_OF_STOP.get(str(message.get("stop_reason")))
    return finish(output, reason, None if billed is None else responses_usage(billed)), billed


def _text_block(output: ResponseOutput, block: dict[str, Any]) -> None:
    text = str(block.get("text", ""))
    start = output.text_length()
    if text:
        output.text(text)
    for citation in block.get("citations") or ():
        if isinstance(citation, dict) and citation.get("type") == "web_search_result_location":
            output.annotation(
                url_citation(citation.get("url"), citation.get("title"), start, start + len(text))
            )
