"""The shared half of a translated stream: SSE framing in, metering, and the events held for the cost.

A translated stream is read event by event (bytes are buffered only to the end of the current event),
each upstream event becomes zero or more events of the caller's format at once, and the caller's final
usage event is held back until settlement knows the cost, as `trollllm.proxy.relay.StreamMeter` does for
streams that are not translated; it has the same interface, so the relay drives either.
"""

from __future__ import annotations

from typing import Any

from trollllm.errors import GatewayError
from trollllm.http_errors import stream_error_event
from trollllm.money import TokenUsage
from trollllm.sse import DONE, SseFraming
from trollllm.wire import WireFormat

__all__ = ["DONE", "TranslatedStream", "nonempty"]


class TranslatedStream(SseFraming):
    """Base of the two directions: subclasses implement `_translate(payload)` (a dict or `DONE`)."""

    client_wire: WireFormat
    """The caller's format (its error events' shape)."""

    def __init__(self, client_model: str, client_wants_usage: bool) -> None:
        self.client_model = client_model
        self.client_wants_usage = client_wants_usage
        self.usage: TokenUsage | None = None
        """The usage the upstream reported (what is billed when it came)."""
        self.delivered_tokens = 0
        super().__init__()

    def feed(self, chunk: bytes) -> bytes:
        """The caller's events for this upstream chunk (whole upstream events only)."""
        return b"".join([self._event(event) for event in self._whole_events(chunk)])

    def flush(self) -> bytes:
        """Whatever incomplete event remains at the end of the stream."""
        rest = self._last_event()
        return self._event(rest) if rest is not None else b""

    def cut(self, error: GatewayError) -> bytes:
        """The caller's events ending a stream cut by `error` (by default its format's error event)."""
        return stream_error_event(self.client_wire, error)

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
        if event.startswith(b"data:") and b"\n" not in event:  # the common shape: one data line
            payload = self._payload(event[5:])
            return b"" if payload is None else self._translate(payload)
        data: bytes | None = None
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                value = line[5:]
                value = value[1:] if value.startswith(b" ") else value
                data = value if data is None else data + b"\n" + value
        if data is None:  # comments, `event:` or `id:` lines alone: nothing to translate
            return b""
        payload = self._payload(data)
        return b"" if payload is None else self._translate(payload)


def nonempty(value: object) -> bool:
    """A non-empty string (a delivered piece of output)."""
    return isinstance(value, str) and value != ""
