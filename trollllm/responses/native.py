"""The native route: a provider row with `responsesApi` gets the Responses request as the caller sent it.

Changed on the way up: `model` (the row's upstream model), `max_output_tokens` (bounded), `input` (a
`previous_response_id` expanded into the items it stands for), `store: false` (the gateway stores; the
upstream account keeps nothing, so any factory key can serve the next turn) and, for a request with
`reasoning`, `include: reasoning.encrypted_content` (so the stored reasoning items can be sent back).
Unknown fields travel untouched, and encrypted reasoning items round-trip byte for byte.
On the way back: the gateway's response id, the caller's model name, `store` and `previous_response_id`
as the caller sent them; everything else as the upstream wrote it.
"""

from __future__ import annotations

from typing import Any

import orjson

from trollllm.crypto import mask_secrets
from trollllm.money import TokenUsage
from trollllm.responses.identity import ResponseIdentity, billed_usage_of
from trollllm.responses.stream import ResponsesStreamMeter
from trollllm.translate import UntranslatableReply
from trollllm.translate.replies import openai_error
from trollllm.wire import WireFormat

_ENCRYPTED_REASONING = "reasoning.encrypted_content"


class NativeRoute:
    """One Responses request on the native route (the interface of a translation, so the relay drives it)."""

    upstream_wire = WireFormat.RESPONSES
    hidden_input_tokens = 0

    def __init__(self, body: dict[str, Any], input_items: list[Any], identity: ResponseIdentity) -> None:
        self.body = body
        self.input_items = input_items
        """The whole input the upstream gets (earlier turns expanded)."""
        self.identity = identity
        self._final: dict[str, Any] | None = None
        self._meter: ResponsesStreamMeter | None = None

    @property
    def final_response(self) -> dict[str, Any] | None:
        """The response object the caller got (None until a whole one came back)."""
        if self._meter is not None:
            return self._meter.final_response
        return self._final

    def upstream_body(self, upstream_model: str, max_tokens: int, stream: bool) -> bytes:
        """The body sent upstream (see the module docstring for what changes)."""
        body = {**self.body, "model": upstream_model, "max_output_tokens": max_tokens, "store": False}
        body["input"] = self.input_items
        body.pop("previous_response_id", None)
        if body.get("reasoning") is not None:
            include = body.get("include")
            include = list(include) if isinstance(include, list) else []
            if _ENCRYPTED_REASONING not in include:
                include.append(_ENCRYPTED_REASONING)
            body["include"] = include
        return orjson.dumps(body)

    def reply(self, raw: bytes, client_model: str) -> tuple[bytes, TokenUsage | None]:
        """The whole answer as the caller gets it, and its billed usage."""
        try:
            response = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UntranslatableReply("the upstream's response is not JSON") from exc
        if not isinstance(response, dict):
            raise UntranslatableReply("the upstream's response is not a JSON object")
        self._final = self.identity.present(response)
        return orjson.dumps(response), billed_usage_of(response)

    def error(self, status: int, raw: bytes, *, message: str | None = None) -> bytes:
        """An upstream error body: already in the caller's (OpenAI) shape; keys masked, or its message
        replaced by `message`."""
        if message is not None:
            return openai_error(status, raw, message=message)
        return mask_secrets(raw.decode(errors="replace")).encode()

    def stream(self, client_model: str, client_wants_usage: bool) -> ResponsesStreamMeter:
        """The relay of the upstream's event stream."""
        self._meter = ResponsesStreamMeter(self.identity)
        return self._meter
