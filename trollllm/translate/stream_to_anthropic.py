"""An OpenAI chat completions stream as Anthropic messages events, event by event.

The first chunk → `message_start`; `content` (and `refusal`) deltas → a text block's `text_delta`s; each
new tool call → a `tool_use` block (`content_block_start` with its id and name), its argument pieces →
`input_json_delta`s; a block ends (`content_block_stop`) when the next one starts or the choice
finishes; `[DONE]` → `message_delta` (stop reason and usage, held back for its `cost`) and
`message_stop`. The gateway always asks the upstream for its usage chunk, which comes before `[DONE]`.
"""

from __future__ import annotations

from typing import Any

import orjson

from trollllm.money import usage_from_openai
from trollllm.translate.replies import STOP_OF_FINISH, anthropic_error, anthropic_usage
from trollllm.translate.sse import DONE, TranslatedStream, nonempty
from trollllm.wire import WireFormat


def _event(name: bytes, payload: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


_DELTA_PREFIX = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'


class OpenAIToAnthropicStream(TranslatedStream):
    """Relays an OpenAI upstream stream to an Anthropic client."""

    client_wire = WireFormat.ANTHROPIC

    def __init__(self, client_model: str, client_wants_usage: bool) -> None:
        super().__init__(client_model, client_wants_usage)
        self._started = False
        self._finished = False
        self._blocks = 0  # content blocks opened so far
        self._open: int | None = None  # the block receiving deltas
        self._text_block: int | None = None
        self._block_of_call: dict[int, int] = {}  # tool call index -> content block index
        self._id_of_call: dict[int, object] = {}  # tool call index -> the id it came with
        self._stop_reason = "end_turn"

    def _start(self, message_id: object) -> bytes:
        self._started = True
        message = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": self.client_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event(b"message_start", {"type": "message_start", "message": message})

    def _open_block(self, block: dict[str, Any]) -> list[bytes]:
        out = self._close_block()
        index = self._blocks
        self._blocks += 1
        self._open = index
        out.append(
            _event(
                b"content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
        )
        return out

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        return [_event(b"content_block_stop", {"type": "content_block_stop", "index": index})]

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return _DELTA_PREFIX + str(index).encode() + b',"delta":' + orjson.dumps(delta) + b"}\n\n"

    def _translate(self, payload: dict[str, Any] | object) -> bytes:
        out: list[bytes] = []
        if payload is DONE or not isinstance(payload, dict):
            self._finish(out)
            return b"".join(out)
        if "error" in payload and "choices" not in payload:
            return b"event: error\ndata: " + anthropic_error(500, orjson.dumps(payload)) + b"\n\n"
        if not self._started:
            out.append(self._start(payload.get("id")))
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self.usage = usage_from_openai(usage)
        choices = payload.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._choice(choice, out)
        return b"".join(out)

    def _choice(self, choice: dict[str, Any], out: list[bytes]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for name in ("content", "refusal"):
                text = delta.get(name)
                if nonempty(text):
                    self.delivered_tokens += 1
                    if self._text_block is None or self._open != self._text_block:
                        out.extend(self._open_block({"type": "text", "text": ""}))
                        self._text_block = self._open
                    out.append(self._delta(self._blocks - 1, {"type": "text_delta", "text": text}))
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                if isinstance(call, dict):
                    self._tool_call(call, out)
        finish = choice.get("finish_reason")
        if isinstance(finish, str):
            self._stop_reason = STOP_OF_FINISH.get(finish, "end_turn")
            out.extend(self._close_block())

    def _tool_call(self, call: dict[str, Any], out: list[bytes]) -> None:
        number = call.get("index", 0)
        number = number if isinstance(number, int) else 0
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        block = self._block_of_call.get(number)
        call_id = call.get("id")
        # A new id at a known index is a new call too (some OpenAI-compatible providers leave `index` out).
        if block is None or (call_id and call_id != self._id_of_call.get(number)):
            self._id_of_call[number] = call_id
            opened: dict[str, Any] = {
                "type": "tool_use",
                "id": call_id,
                "name": function.get("name"),
                "input": {},
            }
            out.extend(self._open_block(opened))
            block = self._block_of_call[number] = self._blocks - 1
            self.delivered_tokens += 1
        arguments = function.get("arguments")
        if nonempty(arguments):
            self.delivered_tokens += 1
            out.append(self._delta(block, {"type": "input_json_delta", "partial_json": arguments}))

    def _finish(self, out: list[bytes]) -> None:
        if self._finished:
            return
        self._finished = True
        if not self._started:
            out.append(self._start(None))
        out.extend(self._close_block())
        payload = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop_reason, "stop_sequence": None},
            "usage": anthropic_usage(self.billed_usage()),
        }
        stop = _event(b"message_stop", {"type": "message_stop"})
        self.hold(b"event: message_delta\n", payload, stop)
