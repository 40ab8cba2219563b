"""A Responses request on a provider without a Responses API: translated to its chat completions or
messages API and back (`trollllm.responses.translate`), behind the interface the relay drives."""

from __future__ import annotations

from typing import Any

import orjson

from trollllm.money import TokenUsage
from trollllm.responses.identity import ResponseIdentity
from trollllm.responses.translate import ResponsesTranslation
from trollllm.responses.translate.streams import ResponsesStream
from trollllm.wire import WireFormat


class TranslatedRoute:
    """One translated Responses request: the translation, with the gateway's response id."""

    def __init__(self, translation: ResponsesTranslation, identity: ResponseIdentity) -> None:
        self.translation = translation
        self.identity = identity
        self._final: bytes | None = None  # the whole reply's Response, parsed only when asked for
        self._stream: ResponsesStream | None = None

    @property
    def upstream_wire(self) -> WireFormat:
        """The upstream's format (chat completions or messages)."""
        return self.translation.upstream_wire

    @property
    def hidden_input_tokens(self) -> int:
        """Input tokens the upstream adds beyond the request's bytes."""
        return self.translation.hidden_input_tokens

    @property
    def final_response(self) -> dict[str, Any] | None:
        """The response object the caller got (None until a whole one came back)."""
        if self._stream is not None:
            held = self._stream.held_event
            response = held.get("response") if held is not None else None
            return response if isinstance(response, dict) else None
        return None if self._final is None else orjson.loads(self._final)

    def upstream_body(self, upstream_model: str, max_tokens: int, stream: bool) -> bytes:
        """The translated body sent upstream."""
        return self.translation.upstream_body(upstream_model, max_tokens, stream)

    def reply(self, raw: bytes, client_model: str) -> tuple[bytes, TokenUsage | None]:
        """A whole answer as a Response, and its billed usage."""
        body, usage = self.translation.reply(raw, client_model, self.identity.response_id)
        self._final = body
        return body, usage

    def error(self, status: int, raw: bytes, *, message: str | None = None) -> bytes:
        """An upstream error in the OpenAI shape; `message` replaces the upstream's."""
        return self.translation.error(status, raw, message=message)

    def stream(self, client_model: str, client_wants_usage: bool) -> ResponsesStream:
        """The upstream's stream as Responses events."""
        self._stream = self.translation.stream(client_model, self.identity.response_id)
        return self._stream
