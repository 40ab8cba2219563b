"""One Responses request's translation to the model's format (chat completions or Anthropic messages):
its upstream body, and how its answer (whole, streamed, or an error) goes back as a Response."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from trollllm.errors import InvalidRequest
from trollllm.money import TokenUsage
from trollllm.responses.translate.inputs import read_input
from trollllm.responses.translate.options import Options, check_fields, read_options
from trollllm.responses.translate.output import ResponseOutput
from trollllm.responses.translate.replies import reply_from_chat, reply_from_messages
from trollllm.responses.translate.sealing import Sealer
from trollllm.responses.translate.stream_from_chat import ChatToResponsesStream
from trollllm.responses.translate.stream_from_messages import MessagesToResponsesStream
from trollllm.responses.translate.streams import ResponsesStream
from trollllm.responses.translate.to_chat import chat_request
from trollllm.responses.translate.to_messages import messages_request, thinking_budget
from trollllm.responses.translate.tools import ToolSet, read_tool_choice, read_tools
from trollllm.translate.replies import openai_error
from trollllm.translate.translation import ANTHROPIC_TOOL_PROMPT_TOKENS
from trollllm.wire import WireFormat

_MAX_TOKENS_FIELD = {WireFormat.ANTHROPIC: "max_tokens", WireFormat.OPENAI: "max_completion_tokens"}


@dataclass(slots=True)
class ResponsesTranslation:
    """A Responses request translated to `upstream_wire`; answers go back as Responses."""

    upstream_wire: WireFormat
    body: dict[str, Any]
    """The translated body, without `model` and the output bound (set by `upstream_body`)."""
    tools: ToolSet
    options: Options
    echo: dict[str, Any]
    """The request's settings as the Response object repeats them."""
    sealer: Sealer

    @property
    def hidden_input_tokens(self) -> int:
        """Input tokens the upstream adds to the translated request beyond its bytes."""
        if self.upstream_wire is WireFormat.ANTHROPIC and self.body.get("tools"):
            return ANTHROPIC_TOOL_PROMPT_TOKENS
        return 0

    @property
    def web_search_max_uses(self) -> int:
        """Web searches this request may run upstream (0 without the tool; 1 for a chat search model)."""
        for tool in self.body.get("tools") or ():
            if tool.get("type") == "web_search_20250305":
                return int(tool["max_uses"])
        return 1 if "web_search_options" in self.body else 0

    def upstream_body(self, upstream_model: str, max_tokens: int, stream: bool) -> bytes:
        """The body sent upstream; an OpenAI stream always asks for its usage chunk (it is billed)."""
        body = {"model": upstream_model, **self.body, _MAX_TOKENS_FIELD[self.upstream_wire]: max_tokens}
        if stream:
            body["stream"] = True
            if self.upstream_wire is WireFormat.OPENAI:
                body["stream_options"] = {"include_usage": True}
        if self.upstream_wire is WireFormat.ANTHROPIC and self.options.effort is not None:
            budget = thinking_budget(self.options.effort, max_tokens)
            if budget is not None:
                body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        return orjson.dumps(body)

    def _output(self, client_model: str, response_id: str, *, events: bool) -> ResponseOutput:
        return ResponseOutput(response_id, client_model, self.echo, self.tools, self.sealer, events=events)

    def reply(self, raw: bytes, client_model: str, response_id: str) -> tuple[bytes, TokenUsage | None]:
        """A whole 2xx answer as a Response with id `response_id`, and its billed usage (None when it
        has none); raises `UntranslatableReply` for a body that is not a JSON object."""
        output = self._output(client_model, response_id, events=False)
        if self.upstream_wire is WireFormat.ANTHROPIC:
            return reply_from_messages(raw, output)
        return reply_from_chat(raw, output, searched="web_search_options" in self.body)

    def error(self, status: int, raw: bytes, *, message: str | None = None) -> bytes:
        """An upstream error body in the OpenAI error shape (the status stays the upstream's); `message`
        replaces the upstream's."""
        return openai_error(status, raw, message=message)

    def stream(self, client_model: str, response_id: str) -> ResponsesStream:
        """The relay of this request's upstream stream as Responses events."""
        output = self._output(client_model, response_id, events=True)
        if self.upstream_wire is WireFormat.ANTHROPIC:
            return MessagesToResponsesStream(output)
        return ChatToResponsesStream(output, searched="web_search_options" in self.body)


def translate_responses_request(
    body: dict[str, Any], upstream_wire: WireFormat, sealer: Sealer
) -> ResponsesTranslation:
    """The translation of a parsed Responses request body for a model speaking `upstream_wire`; 400 naming
    the first field that cannot be carried there. `previous_response_id` must already be expanded into
    `input` by the caller (it is only repeated in the Response)."""
    check_fields(body)
    if "input" not in body:
        raise InvalidRequest("`input` is required", field="input")
    tools = read_tools(body["tools"]) if body.get("tools") is not None else ToolSet()
    choice = read_tool_choice(body.get("tool_choice"), tools)
    options = read_options(body)
    turns = read_input(body.get("instructions"), body["input"])
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise InvalidRequest("`parallel_tool_calls` must be a boolean", field="parallel_tool_calls")
    if upstream_wire is WireFormat.ANTHROPIC:
        translated = messages_request(body, turns, tools, choice, options, sealer)
    else:
        translated = chat_request(body, turns, tools, choice, options)
    return ResponsesTranslation(upstream_wire, translated, tools, options, _echo(body, options), sealer)


def _echo(body: dict[str, Any], options: Options) -> dict[str, Any]:
    text: dict[str, Any] = {"format": options.text_format or {"type": "text"}}
    if options.verbosity is not None:
        text["verbosity"] = options.verbosity
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": options.effort, "summary": options.summary},
        "safety_identifier": body.get("safety_identifier"),
        "store": body.get("store", True),
        "temperature": body.get("temperature"),
        "text": text,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "user": body.get("user"),
        "background": False,
    }
