"""An OpenAI chat completions stream as Responses events, event by event.

`reasoning_content` (or `reasoning`) deltas → a reasoning item's summary; `content` and `refusal` → a
message's output text; each new tool call → a function call item, its argument pieces → argument deltas;
the usage chunk → the final usage; `[DONE]` → `response.completed` (or `.incomplete` when the choice
stopped at the output bound), held for its cost.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from trollllm.money import usage_from_openai
from trollllm.responses.translate.output import ResponseOutput
from trollllm.responses.translate.replies import INCOMPLETE_OF_FINISH, reasoning_tokens_of, url_citation
from trollllm.responses.translate.streams import ResponsesStream
from trollllm.translate.replies import error_message
from trollllm.translate.sse import DONE, nonempty

_TEXT_ONLY = frozenset({"content", "role"})


class ChatToResponsesStream(ResponsesStream):
    """Relays a chat completions upstream stream to a Responses client."""

    def __init__(self, output: ResponseOutput, searched: bool) -> None:
        super().__init__(output)
        self.searched = searched
        self._reason: str | None = None
        self._id_of_call: dict[int, object] = {}  # tool call index -> the id it came with

    def _translate(self, payload: dict[str, Any] | object) -> bytes:
        if payload is DONE or not isinstance(payload, dict):
            return self._finish("incomplete" if self._reason else "completed", self._reason)
        if "error" in payload and "choices" not in payload:
            message, _ = error_message(orjson.dumps(payload))
            return self.fail(message)
        out = self.output.start()
        usage = payload.get("usage")
        if isinstance(usage, dict):
            billed = usage_from_openai(usage)
            self.usage = dataclasses.replace(billed, web_search_calls=1) if self.searched else billed
            self.reasoning_tokens = reasoning_tokens_of(usage)
        choices = payload.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._choice(choice, out)
        return b"".join(out)

    def _choice(self, choice: dict[str, Any], out: list[bytes]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            content = delta.get("content")
            if (
                type(content) is str
                and content
                and delta.keys() <= _TEXT_ONLY
                and not choice.get("finish_reason")
            ):
                self.delivered_tokens += 1  # the common chunk, one piece of text: straight to its event
                out.extend(self.output.text(content))
                return
            for name in ("reasoning_content", "reasoning"):
                if nonempty(delta.get(name)):
                    self.delivered_tokens += 1
                    out.extend(self.output.reasoning(delta[name]))
            for name in ("content", "refusal"):
                if nonempty(delta.get(name)):
                    self.delivered_tokens += 1
                    out.extend(self.output.text(delta[name]))
            for annotation in delta.get("annotations") or ():
                cited = annotation.get("url_citation") if isinstance(annotation, dict) else None
                if isinstance(cited, dict):
                    start, end = cited.get("start_index", 0), cited.get("end_index", 0)
                    out.extend(
                        self.output.annotation(url_citation(cited.get("url"), cited.get("title"), start, end))
                    )
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                if isinstance(call, dict):
                    self._tool_call(call, out)
        finish = choice.get("finish_reason")
        if isinstance(finish, str):
            self._reason = INCOMPLETE_OF_FINISH.get(finish)
            out.extend(self.output.close("incomplete" if self._reason else "completed"))

    def _tool_call(self, call: dict[str, Any], out: list[bytes]) -> None:
        number = call.get("index", 0)
        number = number if isinstance(number, int) else 0
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        call_id = call.get("id")
        # A new id at a known index is a new call too (some OpenAI-compatible providers leave `index` out).
        if number not in self._id_of_call or (call_id and call_id != self._id_of_call[number]):
            self._id_of_call[number] = call_id
            self.delivered_tokens += 1
            out.extend(self.output.function_call(str(call_id), str(function.get("name"))))
        if nonempty(function.get("arguments")):
            self.delivered_tokens += 1
            out.extend(self.output.arguments(function["arguments"]))
