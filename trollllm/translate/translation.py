"""One request's translation between the caller's format and the model's: its upstream body, and how
its answer (whole, streamed, or an error) goes back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from trollllm.money import TokenUsage
from trollllm.translate.replies import anthropic_error, anthropic_reply, openai_error, openai_reply
from trollllm.translate.sse import TranslatedStream
from trollllm.translate.stream_to_anthropic import OpenAIToAnthropicStream
from trollllm.translate.stream_to_openai import AnthropicToOpenAIStream
from trollllm.translate.to_anthropic import anthropic_request
from trollllm.translate.to_openai import openai_request
from trollllm.wire import WireFormat

# The output bound's field in each upstream format (`max_completion_tokens`: what OpenAI's current models
# require, and what OpenAI-compatible providers accept).
_MAX_TOKENS_FIELD = {WireFormat.ANTHROPIC: "max_tokens", WireFormat.OPENAI: "max_completion_tokens"}
# Anthropic bills a tool-use system prompt with every request that has tools (346 tokens at most in its
# pricing tables): input that is in no byte of the request, so the hold adds it.
ANTHROPIC_TOOL_PROMPT_TOKENS = 400


@dataclass(slots=True)
class Translation:
    """A request translated to `upstream_wire`; answers go back in the other format."""

    upstream_wire: WireFormat
    body: dict[str, Any]
    """The translated body, without `model` and the output bound (set by `upstream_body`)."""

    @property
    def client_wire(self) -> WireFormat:
        """The caller's format."""
        return WireFormat.OPENAI if self.upstream_wire is WireFormat.ANTHROPIC else WireFormat.ANTHROPIC

    @property
    def hidden_input_tokens(self) -> int:
        """Input tokens the upstream adds to the translated request beyond its bytes."""
        if self.upstream_wire is WireFormat.ANTHROPIC and self.body.get("tools"):
            return ANTHROPIC_TOOL_PROMPT_TOKENS
        return 0

    def upstream_body(self, upstream_model: str, max_tokens: int, stream: bool) -> bytes:
        """The body sent upstream; an OpenAI stream always asks for its usage chunk (it is billed, and an
        Anthropic caller gets it in `message_delta`)."""
        body = {"model": upstream_model, **self.body, _MAX_TOKENS_FIELD[self.upstream_wire]: max_tokens}
        if stream and self.upstream_wire is WireFormat.OPENAI:
            body["stream_options"] = {"include_usage": True}
        return orjson.dumps(body)

    def reply(self, raw: bytes, client_model: str) -> tuple[bytes, TokenUsage | None]:
        """A whole 2xx answer in the caller's format, and its billed usage (None when it has none);
        raises `UntranslatableReply` for a body that is not a JSON object."""
        if self.upstream_wire is WireFormat.ANTHROPIC:
            return openai_reply(raw, client_model)
        return anthropic_reply(raw, client_model)

    def error(self, status: int, raw: bytes, *, message: str | None = None) -> bytes:
        """An upstream error body in the caller's format (the status stays the upstream's); `message`
        replaces the upstream's."""
        if self.upstream_wire is WireFormat.ANTHROPIC:
            return openai_error(status, raw, message=message)
        return anthropic_error(status, raw, message=message)

    def stream(self, client_model: str, client_wants_usage: bool) -> TranslatedStream:
        """The relay of this request's upstream stream, in the caller's format."""
        if self.upstream_wire is WireFormat.ANTHROPIC:
            return AnthropicToOpenAIStream(client_model, client_wants_usage)
        return OpenAIToAnthropicStream(client_model, client_wants_usage)


def translate_request(body: dict[str, Any], client_wire: WireFormat) -> Translation:
    """The translation of a parsed request body to the other format; 400 naming the first field that
    cannot be expressed there."""
    if client_wire is WireFormat.OPENAI:
        return Translation(WireFormat.ANTHROPIC, anthropic_request(body))
    return Translation(WireFormat.OPENAI, openai_request(body))
