"""Reading what the upstream answers: usage from JSON bodies and SSE streams, and the client's model name.

Streams are relayed event by event: bytes are buffered only up to the end of the current SSE event; each
event's data is parsed to meter it, and most events pass through as the upstream wrote them.
"""

from __future__ import annotations

from typing import Any

import orjson

from trollllm.errors import GatewayError
from trollllm.http_errors import stream_error_event
from trollllm.money import TokenUsage, usage_from_anthropic, usage_from_openai
from trollllm.sse import DONE, SseFraming
from trollllm.token_shape import LEARNING_TRIES, TokenShape, learn_shape
from trollllm.wire import WireFormat


class MalformedReply(Exception):
    """The upstream answered 2xx with a body that is not a JSON object."""


def rewrite_json_reply(raw: bytes, wire: WireFormat, client_model: str) -> tuple[bytes, TokenUsage | None]:
    """A non-streaming reply with the client's model name, and its billed usage (None if absent).

    Raises `MalformedReply` when the body is not a JSON object.
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedReply from exc
    if not isinstance(body, dict):
        raise MalformedReply
    if "model" in body:
        body["model"] = client_model
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return orjson.dumps(body), None
    billed = usage_from_openai(usage) if wire is WireFormat.OPENAI else usage_from_anthropic(usage)
    return orjson.dumps(body), billed


class StreamMeter(SseFraming):
    """Relays one SSE stream: rewrites the model name, meters usage, strips what the client did not ask.

    Every event's data is parsed (orjson), so usage and delivered tokens do not depend on how the upstream
    spells its JSON (spaces, escapes, key order) or ends its lines (LF, CRLF, CR); a token's event of the
    shape learned from an earlier one has only its text parsed, which meters it the same (`token_shape`).
    Events pass through as the upstream wrote them; only an event whose `model` is not spelled compactly is
    re-serialized. Data that is not JSON is dropped (no client could read it); `events` counts the events
    that parsed.

    With `report_cost`, the last event carrying usage (OpenAI: the usage chunk the client asked for;
    Anthropic: `message_delta`) and everything after it are held back: `release_held(cost)` returns them,
    with `"cost": <USD number>` added to the usage event, once settlement knows the cost.
    """

    def __init__(
        self,
        wire: WireFormat,
        upstream_model: str,
        client_model: str,
        client_wants_usage: bool,
        *,
        report_cost: bool = False,
    ) -> None:
        self.wire = wire
        self.client_wants_usage = client_wants_usage
        super().__init__()
        self.usage: TokenUsage | None = None
        self.delivered_tokens = 0
        self._anthropic_start: dict[str, Any] = {}
        self._upstream_model = upstream_model
        self._client_model = client_model
        self._model_from: tuple[bytes, ...] = ()
        self._model_to = b""
        if upstream_model != client_model:
            value = orjson.dumps(upstream_model)
            self._model_from = (b'"model":' + value, b'"model": ' + value)
            self._model_to = b'"model":' + orjson.dumps(client_model)
        self._hold_usage = report_cost and (wire is WireFormat.ANTHROPIC or client_wants_usage)
        self._relay_event = self._openai_event if wire is WireFormat.OPENAI else self._anthropic_event
        self._token_shape: TokenShape | None = None  # learned from a token's event (`token_shape`)
        self._learning_tries = LEARNING_TRIES

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to send to the client for this upstream chunk (whole events only)."""
        relay = self._relay_event
        if not self._buffer and chunk.endswith(b"\n\n") and b"\r" not in chunk:
            end = chunk.find(b"\n\n")
            if end == len(chunk) - 2:  # a long stream's usual chunk: one event
                event = relay(chunk[:end])
                return event + b"\n\n" if event else b""
            events = chunk[:-2].split(b"\n\n")  # whole events, LF line ends
        else:
            events = self._whole_events(chunk)
        out = [data for event in events if (data := relay(event))]
        if not out:
            return b""
        out.append(b"")  # each event ends in a blank line
        return b"\n\n".join(out)

    def flush(self) -> bytes:
        """Whatever incomplete event remains at the end of the stream."""
        rest = self._last_event()
        if rest is None:
            return b""
        event = self._event(rest)
        return event + b"\n\n" if event else b""

    def cut(self, error: GatewayError) -> bytes:
        """The event ending a stream cut by `error`: the wire's own error event."""
        return stream_error_event(self.wire, error)

    def billed_usage(self) -> TokenUsage:
        """What to bill: the usage the upstream reported, or else the tokens delivered to the client."""
        if self.usage is not None:
            return self.usage
        if self._anthropic_start:
            started = usage_from_anthropic(self._anthropic_start)
            return TokenUsage(
                input_tokens=started.input_tokens,
                output_tokens=max(self.delivered_tokens, started.output_tokens),
                cache_write_tokens=started.cache_write_tokens,
                cache_hit_tokens=started.cache_hit_tokens,
            )
        return TokenUsage(output_tokens=self.delivered_tokens)

    def _event(self, event: bytes) -> bytes:
        if not event:
            return b""
        line_end = event.find(b"\n")
        if line_end < 0 and event.startswith(b"data:"):  # OpenAI's shape: one data line
            prefix, found = b"", event[5:]  # type: bytes, bytes | None
        elif (  # Anthropic's shape: an `event:` line, then one data line
            line_end > 0
            and event.startswith(b"data:", line_end + 1)
            and event.find(b"\n", line_end + 1) < 0
            and not event.startswith(b"data:")
        ):
            prefix, found = event[: line_end + 1], event[line_end + 6 :]
        else:
            prefix, found = _split_event(event)
        if found is None:  # comments, `event:` or `id:` lines alone: nothing to meter
            return event
        payload = self._payload(found)
        if not isinstance(payload, dict):
            return self._after_held(event) if payload is DONE else b""
        return self._metered(event, prefix, payload)

    def _openai_event(self, event: bytes) -> bytes:
        """`_event` for an OpenAI stream, with a token's event (most of a stream) metered inline.

        A token's event is one `data: {…}` line whose one choice's delta is its content alone, with no usage:
        it counts one delivered token if the content is not empty. The first ones teach the stream's token
        shape; an event of that shape has only its text read. Any other event is metered as `_event` meters
        it (this one's parse is handed on, not repeated).
        """
        if (shaped := self._by_shape(event)) is not None:
            return shaped
        if not event.startswith(b"data: {") or b"\n" in event:
            return self._event(event)
        try:
            payload = orjson.loads(event[6:])
        except orjson.JSONDecodeError:
            return self._event(event)  # (what an unreadable event becomes is `_event`'s to say)
        self.events += 1
        choices = payload.get("choices")
        if (
            type(choices) is not list
            or len(choices) != 1
            or payload.get("usage") is not None
            or type(choice := choices[0]) is not dict
            or type(delta := choice.get("delta")) is not dict
            or len(delta) != 1
            or type(content := delta.get("content")) is not str
        ):
            return self._metered(event, b"", payload)
        self.delivered_tokens += content != ""
        renamed = bool(self._model_from) and payload.get("model") == self._upstream_model
        if self._learning_tries and self._token_shape is None:
            shape = learn_shape(event, 6, payload, delta, "content", "obfuscation")
            self._keep_shape(shape, renamed=renamed)
        if renamed:
            compact = self._model_from[0]  # (`_rewrite_model`'s first spelling, inline: most events)
            if compact in event:
                event = event.replace(compact, self._model_to, 1)
            else:
                event = self._rewrite_model(event, b"", payload, payload)
        return event if self._held_usage is None else self._after_held(event)

    def _by_shape(self, event: bytes) -> bytes | None:
        """What the client gets of a token's event of the learned shape, metered; None if it is not one."""
        shape = self._token_shape
        if shape is None or (text := shape.text_of(event)) is None:
            return None
        self.events += 1
        self.delivered_tokens += text != ""
        event = shape.for_client(event)
        return event if self._held_usage is None else self._after_held(event)

    def _keep_shape(self, shape: TokenShape | None, *, renamed: bool = False) -> None:
        """One learning try spent: `shape` (what `learn_shape` made of a token's event, renamed for the client
        if `renamed`) is the stream's from now on."""
        self._learning_tries -= 1
        if shape is not None and renamed:  # (not by shape if the model comes after the text: left unlearned)
            shape = shape.renamed(self._model_from[0], self._model_to)
        self._token_shape = shape

    def _anthropic_event(self, event: bytes) -> bytes:
        """`_event` for an Anthropic stream, with a token's event (most of a stream) metered inline.

        A token's event is `event: content_block_delta` and one data line: a `content_block_delta` counts one
        delivered token if its text (thinking, tool input) is not empty; the first ones teach the stream's
        token shape, as in `_openai_event`. Any other event is metered as `_event` meters it (this one's
        parse is handed on, not repeated).
        """
        if (shaped := self._by_shape(event)) is not None:
            return shaped
        if not event.startswith(_ANTHROPIC_DELTA_LINES) or b"\n" in event[_ANTHROPIC_DELTA_DATA:]:
            return self._event(event)
        try:
            payload = orjson.loads(event[_ANTHROPIC_DELTA_DATA:])
        except orjson.JSONDecodeError:
            payload = None
        if type(payload) is not dict:
            return self._event(event)  # (what an event that is not an object becomes is `_event`'s to say)
        self.events += 1
        if payload.get("type") != "content_block_delta" or type(delta := payload.get("delta")) is not dict:
            return self._metered(event, event[: _ANTHROPIC_DELTA_DATA - 6], payload)
        kind = delta.get("type")
        field = _ANTHROPIC_DELTA_FIELD.get(kind) if type(kind) is str else None
        if field is not None and _nonempty(delta.get(field)):
            self.delivered_tokens += 1
        if field is not None and self._learning_tries and self._token_shape is None:
            self._keep_shape(learn_shape(event, _ANTHROPIC_DELTA_DATA, payload, delta, field))
        return event if self._held_usage is None else self._after_held(event)

    def _metered(self, event: bytes, prefix: bytes, payload: dict[str, Any]) -> bytes:
        """What the client gets of an event whose data parsed to `payload`, once it is metered."""
        if self.wire is WireFormat.OPENAI:
            carries_usage = self._openai_payload(payload)
            model_holder: dict[str, Any] | None = payload
            if carries_usage and not self.client_wants_usage and not payload.get("choices"):
                return b""  # the usage chunk the gateway asked for, not the client
        else:
            carries_usage, model_holder = self._anthropic_payload(payload)
        if model_holder is not None and (
            not self._model_from or model_holder.get("model") != self._upstream_model
        ):
            model_holder = None  # nothing to rename
        if carries_usage and self._hold_usage:
            if model_holder is not None:
                model_holder["model"] = self._client_model
            if self._held_usage is not None:  # an earlier usage event: it was not the last one
                held = self.release_held(None)
                self._held_usage = (prefix, payload)
                return held
            self._held_usage = (prefix, payload)
            return b""
        if model_holder is not None:
            event = self._rewrite_model(event, prefix, payload, model_holder)
        if self._held_usage is None:
            return event
        return self._after_held(event)

    def _after_held(self, event: bytes) -> bytes:
        if self._held_usage is None:
            return event
        self._held.append(event + b"\n\n")
        return b""

    def _rewrite_model(
        self, event: bytes, prefix: bytes, payload: dict[str, Any], holder: dict[str, Any]
    ) -> bytes:
        for spelling in self._model_from:
            if spelling in event:
                return event.replace(spelling, self._model_to, 1)
        holder["model"] = self._client_model  # spelled otherwise (escapes, other spacing): re-serialize
        return prefix + b"data: " + orjson.dumps(payload)

    def _openai_payload(self, payload: dict[str, Any]) -> bool:
        """Meter one OpenAI chunk; True when it carries usage."""
        # `type(...) is`: orjson makes plain lists, dicts and strs (this runs for every event of a stream).
        choices = payload.get("choices")
        if type(choices) is list:
            for choice in choices:
                delta = choice.get("delta") if type(choice) is dict else None
                if type(delta) is dict:
                    if len(delta) == 1 and type(content := delta.get("content")) is str:
                        self.delivered_tokens += content != ""  # a token's delta: its content alone
                    else:
                        self.delivered_tokens += _openai_delta_tokens(delta)
        usage = payload.get("usage")
        if type(usage) is dict:
            self.usage = usage_from_openai(usage)
            return True
        return False

    def _anthropic_payload(self, payload: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
        """Meter one Anthropic event; (carries the final usage, the object holding `model`)."""
        kind = payload.get("type")
        if kind == "content_block_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict):
                field = _ANTHROPIC_DELTA_FIELD.get(str(delta.get("type")))
                if field is not None and _nonempty(delta.get(field)):
                    self.delivered_tokens += 1
        elif kind == "message_start":
            message = payload.get("message")
            if isinstance(message, dict):
                usage = message.get("usage")
                if isinstance(usage, dict):
                    self._anthropic_start = usage
                return False, message
        elif kind == "message_delta":
            usage = payload.get("usage")
            if isinstance(usage, dict):
                merged = {**self._anthropic_start, **{k: v for k, v in usage.items() if v is not None}}
                self.usage = usage_from_anthropic(merged)
                return True, None
        return False, None


# The lines of an Anthropic token's event up to its data, and where the data starts.
_ANTHROPIC_DELTA_LINES = b"event: content_block_delta\ndata: "
_ANTHROPIC_DELTA_DATA = len(_ANTHROPIC_DELTA_LINES)
# Anthropic delta type -> the field whose non-empty value is delivered output (signatures are not).
_ANTHROPIC_DELTA_FIELD = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}
_OPENAI_DELTA_FIELDS = frozenset(("content", "reasoning_content", "reasoning", "refusal"))


def _openai_delta_tokens(delta: dict[str, Any]) -> int:
    """Delivered pieces in one OpenAI delta: each non-empty text field and each tool-call fragment."""
    # One pass over the delta's own keys (usually one, `content`), with no call per field: this runs for
    # every event of every stream (issue 26's profile put it first among the relay's own costs).
    pieces = 0
    for name, value in delta.items():
        if name in _OPENAI_DELTA_FIELDS:
            if isinstance(value, str) and value:
                pieces += 1
        elif name == "tool_calls" and isinstance(value, list):
            for call in value:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and (
                    _nonempty(function.get("arguments")) or _nonempty(function.get("name"))
                ):
                    pieces += 1
    return pieces


def _nonempty(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _split_event(event: bytes) -> tuple[bytes, bytes | None]:
    """(the event's non-data lines, each ending in a newline; its data, or None if it has no data line).

    Several data lines join with a newline, as the SSE standard says; one space after `data:` is dropped.
    """
    prefix: list[bytes] = []
    data: list[bytes] = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line:
            prefix.append(line + b"\n")
    return b"".join(prefix), (b"\n".join(data) if data else None)
