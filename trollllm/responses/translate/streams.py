"""What both translated Responses streams share: the response being built, the final event held for the
cost (which goes into the response, beside its `usage`), and `response.failed` for a broken stream."""

from __future__ import annotations

from typing import Any

import orjson

from trollllm.errors import GatewayError
from trollllm.http_errors import error_body
from trollllm.money import Money, usd_text
from trollllm.responses.translate.output import ResponseOutput, responses_usage
from trollllm.translate.sse import TranslatedStream
from trollllm.wire import ENDPOINTS, WireFormat


class ResponsesStream(TranslatedStream):
    """Base of the two upstream formats' streams: subclasses implement `_translate(payload)`."""

    client_wire = WireFormat.RESPONSES

    def __init__(self, output: ResponseOutput) -> None:
        super().__init__(output.client_model, client_wants_usage=True)
        self.output = output
        self.reasoning_tokens = 0
        self.finished = False

    @property
    def output_items(self) -> list[dict[str, Any]]:
        """The response's output items so far (all of them once the stream has ended)."""
        return self.output.items

    def _finish(self, status: str, reason: str | None = None, error: dict[str, Any] | None = None) -> bytes:
        """Close the output: its events now, the final event held until `release_held`."""
        if self.finished:
            return b""
        self.finished = True
        usage = responses_usage(self.billed_usage(), self.reasoning_tokens)
        events, final = self.output.finish(status, usage, reason, error)
        self.hold(b"event: " + final["type"].encode() + b"\n", final)
        return b"".join(events)

    def fail(self, message: str, code: str = "server_error") -> bytes:
        """End a stream that broke (`response.failed`, held like the final event for the cost)."""
        return self._finish("failed", error={"code": code, "message": message})

    def cut(self, error: GatewayError) -> bytes:
        """A stream the gateway cut (upstream broken, deadline): `response.failed` with `error`'s code and
        message, billed for what was delivered; nothing when the response had already ended."""
        body = error_body(ENDPOINTS[WireFormat.RESPONSES], error)["error"]
        return self.fail(body["message"], body["code"])

    def release_held(self, cost: Money | None) -> bytes:
        """The final event, with `"cost"` (USD) in the response beside its `usage`; None adds none."""
        held, self._held = self._held, []
        final, self._held_usage = self._held_usage, None
        if final is None:
            return b"".join(held)
        prefix, payload = final
        data = orjson.dumps(payload)
        if cost is not None:  # `response` is the event's last key, `usage` the response's
            data = data[:-2] + b',"cost":' + usd_text(cost).encode() + b"}}"
        return b"".join([prefix + b"data: " + data + b"\n\n", *held])
