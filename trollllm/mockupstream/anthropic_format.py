"""The Anthropic messages wire format, as the mock upstream writes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from trollllm.mockupstream.controls import Reply
from trollllm.mockupstream.hidden_billing import anthropic_hidden_tokens

ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


_SIGNATURE = "bW9jay1zaWduYXR1cmU="  # a thinking block's signature: opaque to clients, sent back as is


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class AnthropicWire:
    """Renders replies and errors as ``POST /v1/messages`` does."""

    name = "anthropic"
    id_prefix = "msg_mock"
    request_id_header = "request-id"

    def api_key(self, headers: Mapping[str, str]) -> str:
        """Return the key of ``x-api-key``, else of ``Authorization: Bearer``, else ``""``.

        Anthropic accepts both; recent official SDKs send the key as a bearer token.
        """
        key = headers.get("x-api-key", "").strip()
        if key:
            return key
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    def hidden_input_tokens(self, body: Mapping[str, Any]) -> int:
        """Input billed beyond the body's words (tool prompts, PDF pages: :mod:`.hidden_billing`)."""
        return anthropic_hidden_tokens(body)

    def max_tokens(self, body: Mapping[str, Any]) -> Any:
        """Return the body's ``max_tokens`` (required by :meth:`validate`)."""
        return body.get("max_tokens")

    def validate(self, body: Mapping[str, Any]) -> str | None:
        """Return what is wrong with a messages body, or ``None``; ``max_tokens`` is required."""
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model: Field required"
        if not isinstance(body.get("messages"), list):
            return "messages: Field required"
        if "max_tokens" not in body:
            return "max_tokens: Field required"
        return None

    def error(self, status: int, message: str) -> bytes:
        """Return an Anthropic error body: ``{"type": "error", "error": {"type", "message"}}``."""
        kind = ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})

    def _usage(self, reply: Reply, output_tokens: int) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "input_tokens": reply.input_tokens,
            "cache_creation_input_tokens": reply.cache_write_tokens,
            "cache_read_input_tokens": reply.cache_read_tokens,
            "output_tokens": output_tokens,
        }
        if reply.web_searches:
            usage["server_tool_use"] = {"web_search_requests": reply.web_searches}
        return usage

    def _thinking_block(self, reply: Reply) -> dict[str, Any]:
        return {"type": "thinking", "thinking": "".join(reply.thinking_pieces), "signature": _SIGNATURE}

    def _stop_reason(self, reply: Reply) -> str:
        if reply.truncated:
            return "max_tokens"
        return "tool_use" if reply.tool_calls else "end_turn"

    def _tool_uses(self, reply: Reply) -> list[dict[str, Any]]:
        return [
            {
                "type": "tool_use",
                "id": f"toolu_mock_{call.index}",
                "name": call.name,
                "input": orjson.loads(call.arguments),
            }
            for call in reply.tool_calls
        ]

    def _message(self, reply: Reply, content: list[dict[str, Any]], *, final: bool) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": reply.response_id,
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": content,
            "stop_reason": self._stop_reason(reply) if final else None,
            "stop_sequence": None,
        }
        if not reply.no_usage:
            output = reply.billed_output_tokens if final else min(reply.billed_output_tokens, 1)
            message["usage"] = self._usage(reply, output)
        return message

    def view(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The body as the counting and control rules read it: itself."""
        return body

    def completion(self, reply: Reply, body: Mapping[str, Any] | None = None) -> bytes:
        """Return a ``message`` object; ``usage`` is left out when ``no_usage`` is set."""
        content = [{"type": "text", "text": reply.text}, *self._tool_uses(reply)]
        if reply.thinking_tokens:
            content.insert(0, self._thinking_block(reply))
        return orjson.dumps(self._message(reply, content, final=True))

    def malformed_completion(self, reply: Reply, body: Mapping[str, Any] | None = None) -> bytes:
        """Return a truncated, unparsable ``message`` body."""
        return self.completion(reply)[:40]

    def events(self, reply: Reply, body: Mapping[str, Any], *, malformed: bool = False) -> list[bytes]:
        """Return the SSE frames of a streamed reply, as Anthropic's streaming docs describe.

        ``message_start`` (usage with the input and cache tokens and ``output_tokens``
        1, or 0 for an empty reply), ``content_block_start``, ``ping``, one
        ``content_block_delta`` (``text_delta``) per token, ``content_block_stop``,
        ``message_delta`` (stop reason and the final ``output_tokens``), ``message_stop``.
        ``no_usage`` leaves every ``usage`` out; ``malformed`` inserts an event whose
        data is not JSON before the first delta.
        """
        frames = [
            _event(
                "message_start", {"type": "message_start", "message": self._message(reply, [], final=False)}
            ),
        ]
        text_index = 0
        if reply.thinking_tokens:  # a thinking block first, as Anthropic streams it: deltas, its signature
            text_index = 1
            block = {"type": "thinking", "thinking": "", "signature": ""}
            frames.append(
                _event(
                    "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
                )
            )
            frames.extend(
                _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "thinking_delta", "thinking": piece},
                    },
                )
                for piece in reply.thinking_pieces
            )
            signature = {"type": "signature_delta", "signature": _SIGNATURE}
            frames.append(
                _event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": signature})
            )
            frames.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        frames.append(
            _event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": text_index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        frames.append(_event("ping", {"type": "ping"}))
        malformed_at = len(frames)
        frames.extend(
            _event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": text_index,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
            for piece in reply.pieces
        )
        if malformed:
            frames.insert(
                malformed_at,
                b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": {\n\n',
            )
        message_delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop_reason(reply), "stop_sequence": None},
        }
        if not reply.no_usage:
            message_delta["usage"] = {"output_tokens": reply.billed_output_tokens}
            if reply.web_searches:
                message_delta["usage"]["server_tool_use"] = {"web_search_requests": reply.web_searches}
        frames.append(_event("content_block_stop", {"type": "content_block_stop", "index": text_index}))
        for number, block in enumerate(self._tool_uses(reply)):  # each call: start, pieces, stop
            index = text_index + 1 + number
            call = reply.tool_calls[number]
            frames.append(
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}},
                )
            )
            frames.extend(
                _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
                for piece in call.argument_pieces
            )
            frames.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        frames.append(_event("message_delta", message_delta))
        frames.append(_event("message_stop", {"type": "message_stop"}))
        return frames
