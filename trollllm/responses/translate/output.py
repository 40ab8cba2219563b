"""A Response built item by item, with the Responses stream events each step emits.

Both upstream formats, whole or streamed, are read into one `ResponseOutput`: the stream relays its events
as they come, a whole reply keeps only the final response. Items: a `message` (one `output_text` part),
a `reasoning` item (the upstream's thinking as one summary part; on the Anthropic route its thinking
blocks sealed in `encrypted_content`), a `function_call` (its namespace restored) and a `web_search_call`.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from trollllm.money import TokenUsage
from trollllm.responses.translate.sealing import Sealer, seal_thinking
from trollllm.responses.translate.tools import ToolSet

_ID_PREFIX = {"message": "msg", "reasoning": "rs", "function_call": "fc", "web_search_call": "ws"}


def responses_usage(usage: TokenUsage, reasoning_tokens: int = 0) -> dict[str, Any]:
    """Usage in the Responses shape: input includes cache hits and writes, output includes reasoning."""
    prompt = usage.input_tokens + usage.cache_hit_tokens + usage.cache_write_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": usage.cache_hit_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": min(reasoning_tokens, usage.output_tokens)},
        "total_tokens": prompt + usage.output_tokens,
    }


def sse_event(payload: dict[str, Any]) -> bytes:
    """One Responses stream event (named, as OpenAI sends them)."""
    kind: str = payload["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class ResponseOutput:
    """The response being built; each method returns the stream events of its step (in order), or, built
    with `events=False` for a whole reply, no events at all (nothing is serialized but the response)."""

    def __init__(
        self,
        response_id: str,
        client_model: str,
        echo: dict[str, Any],
        tools: ToolSet,
        sealer: Sealer,
        *,
        events: bool = True,
    ) -> None:
        self.events = events
        self.response_id = response_id
        self.client_model = client_model
        self.echo = echo
        self.tools = tools
        self.sealer = sealer
        self.created_at = int(time.time())
        self.items: list[dict[str, Any]] = []
        """The output items so far (the last one is open while `_open` says so)."""
        self._open: str | None = None  # the type of the item receiving deltas
        self._sequence = 0
        self._thinking: list[dict[str, Any]] = []  # Anthropic thinking blocks of the open reasoning item
        self.started = False
        # The open message's `output_text.delta` event up to its delta: the hot path of a stream writes
        # the rest (delta, sequence number) without building and serializing a dict per delta.
        self._text_delta_head = b""

    # -- events ------------------------------------------------------------------------------------------

    def _emit(self, payload: dict[str, Any]) -> bytes:
        payload["sequence_number"] = self._sequence
        self._sequence += 1
        return sse_event(payload) if self.events else b""

    def _item_event(self, kind: str, **fields: Any) -> bytes:
        if not self.events:
            return b""
        item = self.items[-1]
        return self._emit(
            {"type": kind, "item_id": item["id"], "output_index": len(self.items) - 1, **fields}
        )

    def response(self, status: str) -> dict[str, Any]:
        """The response object (its output as it stands)."""
        body: dict[str, Any] = {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "model": self.client_model,
            "output": self.items,
            "usage": None,
            **self.echo,
        }
        return body

    def start(self) -> list[bytes]:
        """`response.created` and `response.in_progress` (once)."""
        if self.started:
            return []
        self.started = True
        if not self.events:
            return []
        created = self.response("in_progress")
        created["output"] = []
        return [
            self._emit({"type": "response.created", "response": created}),
            self._emit({"type": "response.in_progress", "response": {**created}}),
        ]

    def _add(self, item: dict[str, Any]) -> list[bytes]:
        out = self.start() + self.close()
        item["id"] = f"{_ID_PREFIX[item['type']]}_{os.urandom(16).hex()}"
        self.items.append(item)
        self._open = item["type"]
        if not self.events:
            return out
        snapshot = orjson.loads(orjson.dumps(item))  # the item as it stood when added
        out.append(
            self._emit(
                {"type": "response.output_item.added", "output_index": len(self.items) - 1, "item": snapshot}
            )
        )
        return out

    # -- steps ---------------------------------------------------------------------------------------------

    def open_message(self) -> list[bytes]:
        """A message item with one (empty) `output_text` part, unless one is open."""
        if self._open == "message":
            return []
        out = self._add({"type": "message", "status": "in_progress", "role": "assistant", "content": []})
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        self.items[-1]["content"].append(part)
        if not self.events:
            return out
        self._text_delta_head = (
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":'
            + orjson.dumps(self.items[-1]["id"])
            + b',"output_index":'
            + str(len(self.items) - 1).encode()
            + b',"content_index":0,"delta":'
        )
        out.append(
            self._item_event("response.content_part.added", content_index=0, part=dict(part, annotations=[]))
        )
        return out

    def text(self, delta: str) -> list[bytes]:
        """Output text (a message item is opened when another item is open)."""
        out = self.open_message() if self._open != "message" else []
        if delta:
            self.items[-1]["content"][0]["text"] += delta
            sequence, self._sequence = self._sequence, self._sequence + 1
            if not self.events:
                return out
            # as `_item_event` writes it: ..., "delta", "logprobs", then "sequence_number"
            tail = b',"logprobs":[],"sequence_number":' + str(sequence).encode() + b"}\n\n"
            out.append(self._text_delta_head + orjson.dumps(delta) + tail)
        return out

    def text_length(self) -> int:
        """The length of the open message's text (0 when no message is open): where the next text starts."""
        return len(self.items[-1]["content"][0]["text"]) if self._open == "message" else 0

    @property
    def open_item(self) -> dict[str, Any] | None:
        """The item receiving deltas."""
        return self.items[-1] if self._open is not None else None

    def annotation(self, annotation: dict[str, Any]) -> list[bytes]:
        """A citation on the open message's text."""
        if self._open != "message":
            return []
        annotations = self.items[-1]["content"][0]["annotations"]
        annotations.append(annotation)
        return [
            self._item_event(
                "response.output_text.annotation.added",
                content_index=0,
                annotation_index=len(annotations) - 1,
                annotation=annotation,
            )
        ]

    def reasoning(self, delta: str) -> list[bytes]:
        """Thinking text, as the reasoning item's summary."""
        out = self.open_reasoning()
        if delta:
            self.items[-1]["summary"][0]["text"] += delta
            out.append(
                self._item_event("response.reasoning_summary_text.delta", summary_index=0, delta=delta)
            )
        return out

    def open_reasoning(self) -> list[bytes]:
        """A reasoning item with one (empty) summary part, unless one is open."""
        if self._open == "reasoning":
            return []
        out = self._add({"type": "reasoning", "summary": []})
        part = {"type": "summary_text", "text": ""}
        self.items[-1]["summary"].append(part)
        out.append(
            self._item_event("response.reasoning_summary_part.added", summary_index=0, part=dict(part))
        )
        return out

    def thinking_block(self, block: dict[str, Any]) -> None:
        """An Anthropic thinking block of the open reasoning item (sealed when it closes)."""
        self._thinking.append(block)

    def function_call(self, call_id: str, flat_name: str) -> list[bytes]:
        """A new function call (its upstream name turned back into name and namespace)."""
        name, namespace = self.tools.restore(flat_name)
        item: dict[str, Any] = {
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": name,
        }
        if namespace is not None:
            item["namespace"] = namespace
        item["arguments"] = ""
        return self._add(item)

    def arguments(self, delta: str) -> list[bytes]:
        """A piece of the open function call's arguments."""
        if self._open != "function_call" or not delta:
            return []
        self.items[-1]["arguments"] += delta
        return [self._item_event("response.function_call_arguments.delta", delta=delta)]

    def web_search(self) -> list[bytes]:
        """A web search the upstream runs (its query comes with `web_search_query`)."""
        out = self._add({"type": "web_search_call", "status": "in_progress", "action": {"type": "search"}})
        out.append(self._item_event("response.web_search_call.in_progress"))
        out.append(self._item_event("response.web_search_call.searching"))
        return out

    def web_search_query(self, query: str) -> None:
        """The query of the open web search."""
        if self._open == "web_search_call":
            self.items[-1]["action"]["query"] = query

    def close(self, status: str = "completed") -> list[bytes]:
        """Close the open item (its `.done` events)."""
        kind, self._open = self._open, None
        if kind is None:
            return []
        item = self.items[-1]
        out: list[bytes] = []
        if kind == "message":
            part = item["content"][0]
            out.append(
                self._item_event("response.output_text.done", content_index=0, text=part["text"], logprobs=[])
            )
            out.append(self._item_event("response.content_part.done", content_index=0, part=part))
        elif kind == "reasoning":
            part = item["summary"][0]
            out.append(
                self._item_event("response.reasoning_summary_text.done", summary_index=0, text=part["text"])
            )
            out.append(self._item_event("response.reasoning_summary_part.done", summary_index=0, part=part))
            if not part["text"]:
                item["summary"] = []  # a redacted or empty thinking block: no summary to show
            if self._thinking:
                item["encrypted_content"] = seal_thinking(self.sealer, self._thinking)
                self._thinking = []
        elif kind == "function_call":
            out.append(
                self._item_event(
                    "response.function_call_arguments.done", arguments=item["arguments"], name=item["name"]
                )
            )
        elif kind == "web_search_call":
            out.append(self._item_event("response.web_search_call.completed"))
        if kind != "reasoning":
            item["status"] = status
        out.append(
            self._emit(
                {"type": "response.output_item.done", "output_index": len(self.items) - 1, "item": item}
            )
        )
        return out

    def finish(
        self,
        status: str,
        usage: dict[str, Any] | None,
        reason: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> tuple[list[bytes], dict[str, Any]]:
        """The events closing the output, and the final event's payload (`response.completed`,
        `.incomplete` for `reason`, or `.failed` with `error`), which the stream holds for its cost."""
        out = self.start() + self.close("incomplete" if status == "incomplete" else "completed")
        response = self.response(status)
        if status == "completed":
            response["completed_at"] = int(time.time())
        if reason is not None:
            response["incomplete_details"] = {"reason": reason}
        if error is not None:
            response["error"] = error
        del response["usage"]
        response["usage"] = usage  # last: the stream's `cost` goes right after it
        final = {"type": f"response.{status}", "sequence_number": self._sequence, "response": response}
        self._sequence += 1
        return out, final
