"""SSE framing shared by every relayed stream: whole events out of arbitrary chunks, and the final events held
back until settlement knows the cost.

`trollllm.proxy.relay.StreamMeter` (a stream relayed in its own format) and
`trollllm.translate.sse.TranslatedStream` (a stream translated to the other format) both build on it.
"""

from __future__ import annotations

from typing import Any

import orjson

from trollllm.money import Money, usd_text

DONE = object()
"""The `[DONE]` data line of an OpenAI stream."""


class SseFraming:
    """Cuts an upstream byte stream into whole events (LF, CRLF or CR line ends) and holds the usage event.

    A subclass turns each event into what the client gets; when it meets the usage event that should carry the
    cost, it parks it in `_held_usage` (and everything after it in `_held`) for `release_held`.
    """

    def __init__(self) -> None:
        self.events = 0
        """Events whose data parsed (JSON objects and `[DONE]`)."""
        self.dropped_events = 0
        """Events with data that is not a JSON object: no client could read them."""
        self._buffer = b""
        self._held: list[bytes] = []
        self._held_usage: tuple[bytes, dict[str, Any]] | None = None

    def _whole_events(self, chunk: bytes) -> list[bytes]:
        """The events this chunk completes (LF line ends, without their blank line); the rest is buffered."""
        data = self._buffer + chunk if self._buffer else chunk
        if b"\r" in data:
            carry = data.endswith(b"\r")  # may be the first half of a CRLF split between two chunks
            if carry:
                data = data[:-1]
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if carry:
                data += b"\r"
        end = data.rfind(b"\n\n")
        if end < 0:
            self._buffer = data
            return []
        self._buffer = data[end + 2 :]
        return data[:end].split(b"\n\n")

    def _last_event(self) -> bytes | None:
        """The incomplete event left at the end of the stream (None when only blank lines are left)."""
        rest, self._buffer = self._buffer.replace(b"\r", b"\n").strip(b"\n"), b""
        return rest if rest.strip() else None

    def _payload(self, data: bytes) -> dict[str, Any] | object | None:
        """An event's data parsed: its JSON object, `DONE` for `[DONE]`, or None (counted as dropped)."""
        data = data.strip(b" ")
        if data == b"[DONE]":
            self.events += 1
            return DONE
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            self.dropped_events += 1
            return None
        self.events += 1
        return payload

    @property
    def pending_bytes(self) -> int:
        """Bytes buffered while waiting for the end of the current event."""
        return len(self._buffer)

    @property
    def held_event(self) -> dict[str, Any] | None:
        """The data of the event held back for the cost (None when none is held)."""
        return None if self._held_usage is None else self._held_usage[1]

    def release_held(self, cost: Money | None) -> bytes:
        """The events held back for the cost, with `"cost"` (USD) beside the usage; None adds none."""
        held, self._held = self._held, []
        usage_event, self._held_usage = self._held_usage, None
        if usage_event is None:
            return b"".join(held)
        prefix, payload = usage_event
        data = orjson.dumps(payload)
        if cost is not None:
            data = data[:-1] + b',"cost":' + usd_text(cost).encode() + b"}"
        return b"".join([prefix + b"data: " + data + b"\n\n", *held])
