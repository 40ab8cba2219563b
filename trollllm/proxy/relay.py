"""Reading what the upstream answers: usage from JSON bodies and SSE streams, and the client's model name.

Streams are relayed event by event: bytes are buffered only up to the end of the current SSE event, most
events pass through untouched, and only the few that carry usage are parsed.
"""

from __future__ import annotations

from typing import Any

import orjson

from trollllm.errors import GatewayError
from trollllm.http_errors import error_body
from trollllm.money import TokenUsage, usage_from_anthropic, usage_from_openai
from trollllm.proxy.requests import WireFormat


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


class StreamMeter:
    """Relays one SSE stream: rewrites the model name, meters usage, strips what the client did not ask."""

    def __init__(
        self, wire: WireFormat, upstream_model: str, client_model: str, client_wants_usage: bool
    ) -> None:
        self.wire = wire
        self.client_wants_usage = client_wants_usage
        self.usage: TokenUsage | None = None
        self.delivered_tokens = 0
        self._anthropic_start: dict[str, Any] = {}
        self._buffer = b""
        self._model_from = b""
        self._model_to = b""
        if upstream_model != client_model:
            self._model_from = b'"model":' + orjson.dumps(upstream_model)
            self._model_to = b'"model":' + orjson.dumps(client_model)

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to send to the client for this upstream chunk (whole events only)."""
        data = self._buffer + chunk
        if b"\r\n" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n")
        if end < 0:
            self._buffer = data
            return b""
        self._buffer = data[end + 2 :]
        out = [self._event(event) for event in data[: end + 2].split(b"\n\n")[:-1]]
        return b"".join(event + b"\n\n" for event in out if event)

    def flush(self) -> bytes:
        """Whatever incomplete event remains at the end of the stream."""
        rest, self._buffer = self._buffer, b""
        return self._event(rest) + b"\n\n" if rest.strip() else b""

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
        if self._model_from and self._model_from in event:
            event = event.replace(self._model_from, self._model_to)
        elif self._model_from and b'"model": ' in event:
            event = event.replace(self._model_from.replace(b":", b": ", 1), self._model_to)
        if self.wire is WireFormat.OPENAI:
            return self._openai_event(event)
        return self._anthropic_event(event)

    def _openai_event(self, event: bytes) -> bytes:
        if b'"usage":{' in event or b'"usage": {' in event:
            payload = _data_json(event)
            usage = payload.get("usage") if payload else None
            if isinstance(usage, dict):
                self.usage = usage_from_openai(usage)
                if not self.client_wants_usage and not payload.get("choices"):  # type: ignore[union-attr]
                    return b""
        if b'"content":"' in event and b'"content":""' not in event:
            self.delivered_tokens += 1
        return event

    def _anthropic_event(self, event: bytes) -> bytes:
        if b"content_block_delta" in event:
            self.delivered_tokens += 1
        elif b"message_start" in event:
            payload = _data_json(event)
            message = payload.get("message") if payload else None
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                self._anthropic_start = usage
        elif b"message_delta" in event:
            payload = _data_json(event)
            usage = payload.get("usage") if payload else None
            if isinstance(usage, dict):
                merged = {**self._anthropic_start, **{k: v for k, v in usage.items() if v is not None}}
                self.usage = usage_from_anthropic(merged)
        return event


def stream_error_event(wire: WireFormat, error: GatewayError) -> bytes:
    """An error inside an SSE stream (the status line is already sent), in the wire's own shape."""
    path = "/v1/messages" if wire is WireFormat.ANTHROPIC else "/v1/chat/completions"
    payload = orjson.dumps(error_body(path, error))
    if wire is WireFormat.ANTHROPIC:
        return b"event: error\ndata: " + payload + b"\n\n"
    return b"data: " + payload + b"\n\n"


def _data_json(event: bytes) -> dict[str, Any] | None:
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            try:
                value = orjson.loads(line[5:].strip())
            except orjson.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None
