"""An Anthropic messages stream as Responses events, event by event.

`message_start` → `response.created` and `.in_progress`; a thinking block → a reasoning item (its
thinking as the summary, the block with its signature sealed in `encrypted_content` when it ends); text
blocks → one message's output text (citations → `url_citation` annotations); a `tool_use` block → a
function call item (its `input_json_delta`s the argument deltas); a `web_search` `server_tool_use` block →
a `web_search_call` item; `message_delta` → the stop reason and usage; `message_stop` →
`response.completed` (or `.incomplete` at the output bound), held for its cost.
"""

from __future__ import annotations

from typing import Any

import orjson

from trollllm.money import TokenUsage
from trollllm.responses.translate.output import ResponseOutput
from trollllm.responses.translate.replies import INCOMPLETE_OF_STOP, billed_anthropic_usage, url_citation
from trollllm.responses.translate.streams import ResponsesStream
from trollllm.translate.replies import error_message
from trollllm.translate.sse import DONE, nonempty


class MessagesToResponsesStream(ResponsesStream):
    """Relays an Anthropic upstream stream to a Responses client."""

    def __init__(self, output: ResponseOutput) -> None:
        super().__init__(output)
        self._start_usage: dict[str, Any] = {}
        self._reason: str | None = None
        self._block: dict[str, Any] = {}  # the content block being streamed, as it started
        self._signature = ""
        self._query_json = ""
        self._text_start = 0  # where the current text block starts in the message's text

    def billed_usage(self) -> TokenUsage:
        """The reported usage, else the input counted at `message_start` and the tokens delivered."""
        if self.usage is not None or not self._start_usage:
            return super().billed_usage()
        started = billed_anthropic_usage(self._start_usage)
        return TokenUsage(
            input_tokens=started.input_tokens,
            output_tokens=max(self.delivered_tokens, started.output_tokens),
            cache_write_tokens=started.cache_write_tokens,
            cache_hit_tokens=started.cache_hit_tokens,
            web_search_calls=started.web_search_calls,
        )

    def _translate(self, payload: dict[str, Any] | object) -> bytes:
        if payload is DONE or not isinstance(payload, dict):
            return b""
        kind = payload.get("type")
        out: list[bytes]
        if kind == "content_block_delta":
            delta = payload.get("delta")
            out = self._delta(delta) if isinstance(delta, dict) else []
        elif kind == "content_block_start":
            block = payload.get("content_block")
            out = self._block_start(block) if isinstance(block, dict) else []
        elif kind == "content_block_stop":
            out = self._block_stop()
        elif kind == "message_start":
            message = payload.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                self._start_usage = usage
            out = self.output.start()
        elif kind == "message_delta":
            usage = payload.get("usage")
            if isinstance(usage, dict):
                merged = {**self._start_usage, **{k: v for k, v in usage.items() if v is not None}}
                self.usage = billed_anthropic_usage(merged)
            delta = payload.get("delta")
            stop = delta.get("stop_reason") if isinstance(delta, dict) else None
            self._reason = INCOMPLETE_OF_STOP.get(str(stop))
            out = []
        elif kind == "message_stop":
            return self._finish("incomplete" if self._reason else "completed", self._reason)
        elif kind == "error":
            message, _ = error_message(orjson.dumps(payload))
            return self.fail(message)
        else:
            out = []  # ping, and events the Responses API has no place for
        return b"".join(out)

    def _block_start(self, block: dict[str, Any]) -> list[bytes]:
        self._block = block
        kind = block.get("type")
        if kind == "thinking":
            self._signature = str(block.get("signature") or "")
            return self.output.reasoning(str(block.get("thinking") or ""))
        if kind == "redacted_thinking":
            out = self.output.open_reasoning()
            self.output.thinking_block({"type": "redacted_thinking", "data": block.get("data", "")})
            return out + self.output.close()
        if kind == "text":
            out = self.output.open_message()
            self._text_start = self.output.text_length()
            if nonempty(block.get("text")):
                out.extend(self.output.text(block["text"]))
            return out
        if kind == "tool_use":
            self.delivered_tokens += 1
            return self.output.function_call(str(block.get("id")), str(block.get("name")))
        if kind == "server_tool_use" and block.get("name") == "web_search":
            self._query_json = ""
            return self.output.web_search()
        return []  # web search results: the model's text cites them

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        kind = delta.get("type")
        if kind == "text_delta" and nonempty(delta.get("text")):
            self.delivered_tokens += 1
            return self.output.text(delta["text"])
        if kind == "thinking_delta" and nonempty(delta.get("thinking")):
            self.delivered_tokens += 1
            return self.output.reasoning(delta["thinking"])
        if kind == "signature_delta" and isinstance(delta.get("signature"), str):
            self._signature += delta["signature"]
            return []
        if kind == "input_json_delta" and nonempty(delta.get("partial_json")):
            self.delivered_tokens += 1
            if self._block.get("type") == "server_tool_use":
                self._query_json += delta["partial_json"]
                return []
            return self.output.arguments(delta["partial_json"])
        if kind == "citations_delta":
            citation = delta.get("citation")
            if isinstance(citation, dict) and citation.get("type") == "web_search_result_location":
                # Anthropic cites a whole text block: the span is fixed when the block ends
                annotation = url_citation(
                    citation.get("url"), citation.get("title"), self._text_start, self._text_start
                )
                return self.output.annotation(annotation)
        return []

    def _block_stop(self) -> list[bytes]:
        kind = self._block.get("type")
        item = self.output.open_item
        if kind == "thinking" and item is not None:
            thinking = item["summary"][0]["text"] if item.get("summary") else ""
            self.output.thinking_block(
                {"type": "thinking", "thinking": thinking, "signature": self._signature}
            )
            return self.output.close()
        if kind == "text" and item is not None and item["type"] == "message":
            end = self.output.text_length()
            for annotation in item["content"][0]["annotations"]:
                if (
                    annotation["start_index"] == self._text_start
                    and annotation["end_index"] == self._text_start
                ):
                    annotation["end_index"] = end
            return []  # the message stays open for the next text block
        if kind == "tool_use":
            return self.output.close()
        if kind == "server_tool_use" and item is not None and item["type"] == "web_search_call":
            try:
                query = orjson.loads(self._query_json).get("query") if self._query_json else None
            except (orjson.JSONDecodeError, AttributeError):
                query = None
            if isinstance(query, str):
                self.output.web_search_query(query)
            return self.output.close()
        return []
