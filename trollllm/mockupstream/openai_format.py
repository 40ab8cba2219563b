"""The OpenAI chat completions wire format, as the mock upstream writes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from trollllm.mockupstream.controls import Reply
from trollllm.mockupstream.hidden_billing import openai_hidden_tokens

SYSTEM_FINGERPRINT = "fp_trollllm_mock"

# status -> (error type, error code), as OpenAI answers them.
_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("requests", "rate_limit_exceeded"),
}


_PLACEHOLDER = "\x00piece"
_PLACEHOLDER_JSON = orjson.dumps(_PLACEHOLDER)


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class OpenAIWire:
    """Renders replies and errors as ``POST /v1/chat/completions`` does."""

    name = "openai"
    id_prefix = "chatcmpl-mock"
    request_id_header = "x-request-id"

    def api_key(self, headers: Mapping[str, str]) -> str:
        """Return the key of ``Authorization: Bearer <key>``, or ``""`` when absent."""
        value = headers.get("Authorization", "")
        scheme, _, key = value.partition(" ")
        return key.strip() if scheme.lower() == "bearer" else ""

    def hidden_input_tokens(self, body: Mapping[str, Any]) -> int:
        """Input billed beyond the body's words (tool prompts, PDF pages: :mod:`.hidden_billing`)."""
        return openai_hidden_tokens(body)

    def max_tokens(self, body: Mapping[str, Any]) -> Any:
        """Return the output limit: ``max_completion_tokens``, else ``max_tokens``, else ``None``."""
        limit = body.get("max_completion_tokens")
        return body.get("max_tokens") if limit is None else limit

    def validate(self, body: Mapping[str, Any]) -> str | None:
        """Return what is wrong with a chat completions body, or ``None`` when it is usable."""
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "you must provide a model parameter"
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return "Missing required parameter: 'messages'."
        return None

    def error(self, status: int, message: str) -> bytes:
        """Return an OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
        kind, code = _ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
        return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})

    def _usage(self, reply: Reply) -> dict[str, Any]:
        prompt = reply.input_tokens + reply.cache_read_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": reply.billed_output_tokens,
            "total_tokens": prompt + reply.billed_output_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cache_read_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _finish_reason(self, reply: Reply) -> str:
        if reply.truncated:
            return "length"
        return "tool_calls" if reply.tool_calls else "stop"

    def _tool_calls(self, reply: Reply) -> list[dict[str, Any]]:
        return [
            {
                "id": f"call_mock_{call.index}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in reply.tool_calls
        ]

    def view(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The body as the counting and control rules read it: itself."""
        return body

    def completion(self, reply: Reply, body: Mapping[str, Any] | None = None) -> bytes:
        """Return a ``chat.completion`` object; ``usage`` is left out when ``no_usage`` is set."""
        answer: dict[str, Any] = {
            "id": reply.response_id,
            "object": "chat.completion",
            "created": reply.created,
            "model": reply.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": reply.text,
                        "refusal": None,
                        "annotations": [],
                        **({"tool_calls": self._tool_calls(reply)} if reply.tool_calls else {}),
                    },
                    "logprobs": None,
                    "finish_reason": self._finish_reason(reply),
                }
            ],
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        if not reply.no_usage:
            answer["usage"] = self._usage(reply)
        return orjson.dumps(answer)

    def malformed_completion(self, reply: Reply, body: Mapping[str, Any] | None = None) -> bytes:
        """Return a truncated, unparsable ``chat.completion`` body."""
        return self.completion(reply)[:40]

    def events(self, reply: Reply, body: Mapping[str, Any], *, malformed: bool = False) -> list[bytes]:
        """Return the SSE frames of a streamed reply, ending with ``data: [DONE]``.

        A role chunk, one content chunk per token, a finish chunk, then (only when the
        request set ``stream_options.include_usage`` and ``no_usage`` is off) a chunk
        with ``choices: []`` and the usage. With ``include_usage`` every other chunk
        carries ``"usage": null``, as OpenAI's do. ``malformed`` inserts a frame whose
        data is not JSON before the first content chunk.
        """
        options = body.get("stream_options")
        include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
        head = {
            "id": reply.response_id,
            "object": "chat.completion.chunk",
            "created": reply.created,
            "model": reply.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None) -> bytes:
            payload: dict[str, Any] = {
                **head,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                payload["usage"] = None
            return _sse(payload)

        frames = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
        # A content chunk's bytes around its piece are the same for every piece: rendered once (the piece
        # comes after every string of the request, so the last placeholder is the piece's).
        before, _, after = chunk({"content": _PLACEHOLDER}, None).rpartition(_PLACEHOLDER_JSON)
        frames.extend(before + orjson.dumps(piece) + after for piece in reply.pieces)
        for call in reply.tool_calls:  # each call: its id and name, then its arguments in pieces
            opening = {"index": call.index, "id": f"call_mock_{call.index}", "type": "function"}
            opening["function"] = {"name": call.name, "arguments": ""}
            frames.append(chunk({"tool_calls": [opening]}, None))
            frames.extend(
                chunk({"tool_calls": [{"index": call.index, "function": {"arguments": piece}}]}, None)
                for piece in call.argument_pieces
            )
        if malformed:
            frames.insert(1, b'data: {"id": "' + reply.response_id.encode() + b'", "choices": [{\n\n')
        frames.append(chunk({}, self._finish_reason(reply)))
        if include_usage and not reply.no_usage:
            frames.append(_sse({**head, "choices": [], "usage": self._usage(reply)}))
        frames.append(b"data: [DONE]\n\n")
        return frames
