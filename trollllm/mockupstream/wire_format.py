"""What the mock server needs from a wire format (OpenAI, Anthropic, Responses), and an error in one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from trollllm.mockupstream.controls import Reply

_RETRY_AFTER_STATUSES = frozenset({429, 503, 529})


class WireFormat(Protocol):
    """What the server needs from a wire format (:class:`OpenAIWire`, :class:`AnthropicWire`)."""

    name: str
    id_prefix: str
    request_id_header: str

    def api_key(self, headers: Mapping[str, str]) -> str: ...
    def max_tokens(self, body: Mapping[str, Any]) -> Any: ...
    def hidden_input_tokens(self, body: Mapping[str, Any]) -> int: ...
    def validate(self, body: Mapping[str, Any]) -> str | None: ...
    def view(self, body: Mapping[str, Any]) -> Mapping[str, Any]: ...
    def error(self, status: int, message: str) -> bytes: ...
    def completion(self, reply: Reply, body: Mapping[str, Any]) -> bytes: ...
    def malformed_completion(self, reply: Reply, body: Mapping[str, Any]) -> bytes: ...
    def events(self, reply: Reply, body: Mapping[str, Any], *, malformed: bool = False) -> list[bytes]: ...


def error_response(wire: WireFormat, status: int, message: str, retry_after: int = 1) -> web.Response:
    """An error in the wire format's own shape; 429, 503 and 529 carry `retry-after`."""
    headers = {"retry-after": str(retry_after)} if status in _RETRY_AFTER_STATUSES else None
    return web.Response(
        status=status, body=wire.error(status, message), content_type="application/json", headers=headers
    )
