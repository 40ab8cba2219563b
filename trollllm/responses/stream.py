"""The native route's stream relay: Responses API events pass through as the upstream wrote them, except
the events carrying the response object (`response.created`, `.in_progress`, and the terminal one), which
get the gateway's id, the caller's model name, `store` and `previous_response_id`.

The terminal event (`response.completed`, `.incomplete` or `.failed`) and anything after it are held
back until settlement knows the cost: `release_held(cost)` returns them with `"cost"` (USD) beside the
response's `usage`. A stream cut before its terminal event is billed for the output delivered (SPEC §4)
and ends, like a translated one, in `response.failed` (`cut`): the response as created, with the items
done so far, the error and the billed usage.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from trollllm.errors import GatewayError
from trollllm.http_errors import error_body
from trollllm.money import Money, TokenUsage, usd_text
from trollllm.responses.identity import TERMINAL_EVENTS, ResponseIdentity, billed_usage_of
from trollllm.responses.translate.output import responses_usage
from trollllm.sse import SseFraming
from trollllm.token_shape import LEARNING_TRIES, NumberedShape, learn_numbered_shape
from trollllm.wire import ENDPOINTS, WireFormat

# Events whose non-empty `delta` is delivered output (counted when no usage comes).
_DELTA_EVENTS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
    }
)


class ResponsesStreamMeter(SseFraming):
    """Relays one Responses event stream and meters it (the `StreamMeter` interface)."""

    def __init__(self, identity: ResponseIdentity) -> None:
        super().__init__()
        self.identity = identity
        self.usage: TokenUsage | None = None
        self.delivered_tokens = 0
        self.final_response: dict[str, Any] | None = None
        """The terminal event's response object, as the caller gets it."""
        self._terminal: tuple[bytes, dict[str, Any]] | None = None
        self._created: dict[str, Any] | None = None  # the response object as `response.created` had it
        self._items_done: list[Any] = []
        self._next_sequence = 0
        # Most of a stream is delta events that differ only in their sequence number and text (and OpenAI's
        # padding): once one is parsed, later ones of its shape are read without a parse (`token_shape`).
        self._delta_shape: NumberedShape | None = None
        self._learning_tries = LEARNING_TRIES

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to send to the client for this upstream chunk (whole events only)."""
        events = self._whole_events(chunk)
        if len(events) == 1:
            return self._event(events[0])
        return b"".join([self._event(event) for event in events])

    def flush(self) -> bytes:
        """Whatever incomplete event remains at the end of the stream."""
        rest = self._last_event()
        return self._event(rest) if rest is not None else b""

    def cut(self, error: GatewayError) -> bytes:
        """A stream the gateway cut (upstream broken, deadline) before its terminal event: `response.failed`
        held for its cost like an upstream's; nothing when the response had already ended."""
        if self._terminal is not None or self.final_response is not None:
            return b""
        body = error_body(ENDPOINTS[WireFormat.RESPONSES], error)["error"]
        response = self.identity.present(
            {"object": "response", "created_at": int(time.time()), **(self._created or {})}
        )
        response["status"] = "failed"
        response["error"] = {"code": body["code"], "message": body["message"]}
        response["output"] = self._items_done
        response.pop("usage", None)
        response["usage"] = responses_usage(self.billed_usage())  # last: `cost` goes right after it
        self.final_response = response
        payload = {"type": "response.failed", "sequence_number": self._next_sequence, "response": response}
        self._terminal = (b"response.failed", payload)
        return b""

    def billed_usage(self) -> TokenUsage:
        """What to bill: the usage the upstream reported, else the output delivered to the client."""
        return self.usage if self.usage is not None else TokenUsage(output_tokens=self.delivered_tokens)

    def release_held(self, cost: Money | None) -> bytes:
        """The terminal event (with `"cost"` beside `usage` in its response) and what came after it."""
        held, self._held = self._held, []
        terminal, self._terminal = self._terminal, None
        if terminal is None:
            return b"".join(held)
        kind, payload = terminal
        response = payload["response"]
        data = orjson.dumps(response)
        if cost is not None:
            data = data[:-1] + b',"cost":' + usd_text(cost).encode() + b"}"
        rest = orjson.dumps({key: value for key, value in payload.items() if key != "response"})
        event = b"event: " + kind + b'\ndata: {"response":' + data + b"," + rest[1:]
        return b"".join([event + b"\n\n", *held])

    def _event(self, event: bytes) -> bytes:
        """The client's bytes for one upstream event (the event and its blank line, or nothing yet)."""
        if self._delta_shape is not None and (read := self._delta_shape.read(event)) is not None:
            self.events += 1
            self._next_sequence = read[0] + 1
            self.delivered_tokens += read[1] != ""
            return event + b"\n\n" if self._terminal is None else self._after_held(event)
        first_end = event.find(b"\n")
        data_start = 0
        if (
            first_end > 0
            and event.startswith(b"data:", first_end + 1)
            and event.startswith(b"event:")
            and event.find(b"\n", first_end + 1) < 0
        ):
            data_start = first_end + 6  # the common shape: `event:` then one data line
            data = event[data_start:]
        else:
            found = _data_of(event)
            if found is None:  # comments, `event:` or `id:` lines alone (or nothing): nothing to meter
                return event + b"\n\n" if event else b""
            data = found
        payload = self._payload(data)
        if not isinstance(payload, dict):  # `[DONE]` passes; data that is not a JSON object is dropped
            return b"" if payload is None else self._after_held(event)
        kind = payload.get("type")
        if not isinstance(kind, str):
            kind = ""
        sequence = payload.get("sequence_number")
        if isinstance(sequence, int):
            self._next_sequence = sequence + 1
        if kind in _DELTA_EVENTS:
            delta = payload.get("delta")
            if delta and isinstance(delta, str):
                self.delivered_tokens += 1
            if self._learning_tries and data_start:  # (a stream's first deltas may be another kind's)
                self._learning_tries -= 1
                shape = learn_numbered_shape(
                    event, data_start, payload, "sequence_number", "delta", "obfuscation"
                )
                self._delta_shape = shape or self._delta_shape
        elif kind == "response.output_item.done" and "item" in payload:
            self._items_done.append(payload["item"])
        elif kind:
            response = payload.get("response")
            if isinstance(response, dict):
                return self._object_event(kind, payload, response)
        if self._terminal is None:
            return event + b"\n\n"
        self._held.append(event + b"\n\n")
        return b""

    def _object_event(self, kind: str, payload: dict[str, Any], response: dict[str, Any]) -> bytes:
        """An event carrying the response object: the gateway's identity set in it; the terminal one held."""
        self.identity.present(response)
        if kind == "response.created":
            self._created = dict(response)
        if kind in TERMINAL_EVENTS:
            self.final_response = response
            self.usage = billed_usage_of(response)
            self._terminal = (kind.encode(), payload)
            return b""
        return self._after_held(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload))

    def _after_held(self, event: bytes) -> bytes:
        if self._terminal is None:
            return event + b"\n\n"
        self._held.append(event + b"\n\n")
        return b""


def _data_of(event: bytes) -> bytes | None:
    """An event's data lines joined (their optional leading space removed); None when it has none."""
    data: bytes | None = None
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            value = value[1:] if value.startswith(b" ") else value
            data = value if data is None else data + b"\n" + value
    return data
