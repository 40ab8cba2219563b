"""The shared half of a translated stream: SSE framing in, metering, and the events held for the cost.

A translated stream is read event by event (bytes are buffered only to the end of the current event),
each upstream event becomes zero or more events of the caller's format at once, and the caller's final
usage event is held back until settlement knows the cost, as `trollllm.proxy.relay.StreamMeter` does for
streams that are not translated; it has the same interface, so the relay drives either.
"""

from __future__ import annotations

from typing import Any

import orjson

from trollllm.money import Money, TokenUsage, usd_text

DONE = object()
"""The `[DONE]` data line of an OpenAI stream."""


class TranslatedStream:
    """Base of the two directions: subclasses implement `_translate(payload)` (a dict or `DONE`)."""

    def __init__(self, client_model: str, client_wants_usage: bool) -> None:
        self.client_model = client_model
        self.client_wants_usage = client_wants_usage
        self.usage: TokenUsage | None = None
        """The usage the upstream reported (what is billed when it came)."""
        self.delivered_tokens = 0
        self.events = 0
        """Upstream events whose data parsed (JSON objects and `[DONE]`)."""
        self.dropped_events = 0
        self._buffer = b""
        self._held_usage: tuple[bytes, dict[str, Any]] | None = None
        self._held: list[bytes] = []

    def feed(self, chunk: bytes) -> bytes:
        """The caller's events for this upstream chunk (whole upstream events only)."""
        data = self._buffer + chunk if self._buffer else chunk
        if b"\r" in data:
            carry = data.endswith(b"\r")  # may be the first half of a CRLF split between two chunks
            data = (data[:-1] if carry else data).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if carry:
                data += b"\r"
        end = data.rfind(b"\n\n")
        if end < 0:
            self._buffer = data
            return b""
        self._buffer = data[end + 2 :]
        return b"".join([self._event(event) for event in data[:end].split(b"\n\n")])

    def flush(self) -> bytes:
        """Whatever incomplete event remains at the end of the stream."""
        rest, self._buffer = self._buffer.replace(b"\r", b"\n").strip(b"\n"), b""
        return self._event(rest) if rest.strip() else b""

    @property
    def pending_bytes(self) -> int:
        """Bytes buffered while waiting for the end of the current event."""
        return len(self._buffer)

    def release_held(self, cost: Money | None) -> bytes:
        """The final events held back for the cost, with `"cost"` (USD) beside the usage."""
        held, self._held = self._held, []
        usage_event, self._held_usage = self._held_usage, None
        if usage_event is None:
            return b"".join(held)
        prefix, payload = usage_event
        data = orjson.dumps(payload)
        if cost is not None:
            data = data[:-1] + b',"cost":' + usd_text(cost).encode() + b"}"
        return b"".join([prefix + b"data: " + data + b"\n\n", *held])

    def billed_usage(self) -> TokenUsage:
        """What to bill: the usage the upstream reported, else the tokens delivered (SPEC §4)."""
        return self.usage if self.usage is not None else TokenUsage(output_tokens=self.delivered_tokens)

    def hold(self, prefix: bytes, usage_payload: dict[str, Any] | None, *after: bytes) -> None:
        """Hold the caller's final events: the usage event (if any) gets the cost on release."""
        if usage_payload is not None:
            self._held_usage = (prefix, usage_payload)
        self._held.extend(after)

    def _translate(self, payload: dict[str, Any] | object) -> bytes:
        raise NotImplementedError

    def _event(self, event: bytes) -> bytes:
        if not event:
            return b""
        data: bytes | None = None
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                value = line[5:]
                value = value[1:] if value.startswith(b" ") else value
                data = value if data is None else data + b"\n" + value
        if data is None:  # comments, `event:` or `id:` lines alone: nothing to translate
            return b""
        data = data.strip(b" ")
        if data == b"[DONE]":
            self.events += 1
            return self._translate(DONE)
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            self.dropped_events += 1
            return b""
        self.events += 1
        return self._translate(payload)


def nonempty(value: object) -> bool:
    """A non-empty string (a delivered piece of output)."""
    return isinstance(value, str) and value != ""
