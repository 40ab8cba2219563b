"""An Anthropic messages stream as OpenAI `chat.completion.chunk` events, event by event.

`message_start` → the role chunk; text and thinking deltas → `content` / `reasoning_content` chunks; a
`tool_use` block → a `tool_calls` chunk with its id and name, then one chunk per `input_json_delta`
(the arguments, as they come); `message_delta` → the finish chunk; `message_stop` → the usage chunk
(when the client asked with `stream_options.include_usage`, held back for its `cost`) and `[DONE]`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from trollllm.money import TokenUsage, usage_from_anthropic
from trollllm.translate.replies import FINISH_OF_STOP, openai_error, openai_usage
from trollllm.translate.sse import DONE, TranslatedStream, nonempty
from trollllm.wire import WireFormat

_DONE_EVENT = b"data: [DONE]\n\n"


class AnthropicToOpenAIStream(TranslatedStream):
    """Relays an Anthropic upstream stream to an OpenAI client."""

    client_wire = WireFormat.OPENAI

    def __init__(self, client_model: str, client_wants_usage: bool) -> None:
        super().__init__(client_model, client_wants_usage)
        self._start_usage: dict[str, Any] = {}
        self._head = b""  # `{"id":…,"object":…,"created":…,"model":…,` shared by every chunk
        self._tool_of_block: dict[int, int] = {}  # content block index -> tool call index

    def billed_usage(self) -> TokenUsage:
        """The reported usage, else the input counted at `message_start` and the tokens delivered."""
        if self.usage is not None or not self._start_usage:
            return super().billed_usage()
        started = usage_from_anthropic(self._start_usage)
        return TokenUsage(
            input_tokens=started.input_tokens,
            output_tokens=max(self.delivered_tokens, started.output_tokens),
            cache_write_tokens=started.cache_write_tokens,
            cache_hit_tokens=started.cache_hit_tokens,
        )

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return b"data: " + self._head + b'"choices":[' + orjson.dumps(choice) + b"]}\n\n"

    def _ensure_head(self, message_id: object) -> None:
        if not self._head:
            head = {
                "id": message_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.client_model,
            }
            self._head = orjson.dumps(head)[:-1] + b","

    def _translate(self, payload: dict[str, Any] | object) -> bytes:
        if payload is DONE or not isinstance(payload, dict):
            return b""
        kind = payload.get("type")
        if kind == "content_block_delta":
            delta = payload.get("delta")
            if not isinstance(delta, dict):
                return b""
            delta_type = delta.get("type")
            if delta_type == "text_delta" and nonempty(delta.get("text")):
                self.delivered_tokens += 1
                return self._chunk({"content": delta["text"]})
            if delta_type == "input_json_delta" and nonempty(delta.get("partial_json")):
                self.delivered_tokens += 1
                call = self._tool_of_block.get(payload.get("index", -1), 0)
                return self._chunk(
                    {"tool_calls": [{"index": call, "function": {"arguments": delta["partial_json"]}}]}
                )
            if delta_type == "thinking_delta" and nonempty(delta.get("thinking")):
                self.delivered_tokens += 1
                return self._chunk({"reasoning_content": delta["thinking"]})
            return b""
        if kind == "content_block_start":
            block = payload.get("content_block")
            if not isinstance(block, dict):
                return b""
            if block.get("type") == "tool_use":
                call = len(self._tool_of_block)
                self._tool_of_block[payload.get("index", call)] = call
                function = {"name": block.get("name"), "arguments": ""}
                return self._chunk(
                    {
                        "tool_calls": [
                            {"index": call, "id": block.get("id"), "type": "function", "function": function}
                        ]
                    }
                )
            if block.get("type") == "text" and nonempty(block.get("text")):
                return self._chunk({"content": block["text"]})
            return b""
        if kind == "message_start":
            message = payload.get("message")
            message = message if isinstance(message, dict) else {}
            usage = message.get("usage")
            if isinstance(usage, dict):
                self._start_usage = usage
            self._ensure_head(message.get("id"))
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "message_delta":
            self._ensure_head(None)
            usage = payload.get("usage")
            if isinstance(usage, dict):
                merged = {**self._start_usage, **{k: v for k, v in usage.items() if v is not None}}
                self.usage = usage_from_anthropic(merged)
            delta = payload.get("delta")
            stop = delta.get("stop_reason") if isinstance(delta, dict) else None
            return self._chunk({}, FINISH_OF_STOP.get(str(stop), "stop"))
        if kind == "message_stop":
            self._ensure_head(None)
            if not self.client_wants_usage:
                return _DONE_EVENT
            final: dict[str, Any] = orjson.loads(self._head[:-1] + b"}")
            final["choices"] = []
            final["usage"] = openai_usage(self.billed_usage())
            self.hold(b"", final, _DONE_EVENT)
            return b""
        if kind == "error":
            return b"data: " + openai_error(500, orjson.dumps(payload)) + b"\n\n"
        return b""  # ping and events OpenAI has no place for
