"""Upstream error bodies as the client sees them (SPEC §9).

An error about the request itself (400, 404, 413, 422) keeps the upstream's message, keys masked, so the
user can fix the request. Any other error is about the operator's account or capacity (401, 403, 429,
5xx; also 402, 408, 409 …): the client gets the upstream's status and error type with a neutral message,
and the upstream's body (account ids, limits) goes to the log for the admin, masked. A reply on the
user's own provider key (BYOK) is about the user's own account: it is kept whole.
"""

from __future__ import annotations

import logging

import orjson

from trollllm.crypto import mask_secrets
from trollllm.proxy.requests import UpstreamRoute
from trollllm.translate.replies import anthropic_error_type
from trollllm.wire import WireFormat

logger = logging.getLogger("trollllm.proxy")

REQUEST_ERROR_STATUSES = frozenset({400, 404, 413, 422})
"""Upstream statuses whose message is about the client's request, and so is relayed."""
_LOGGED_BODY_CHARS = 4000
_JSON = b"application/json"


def client_error_body(
    status: int,
    raw: bytes,
    content_type: bytes,
    wire: WireFormat,
    translation: UpstreamRoute | None,
    *,
    own_key: bool,
    request_id: str,
) -> tuple[bytes, bytes]:
    """(body, content type) of an upstream error reply `raw` for a client of `wire`."""
    if status in REQUEST_ERROR_STATUSES or own_key:
        if translation is not None:  # the caller's error shape, the upstream's status
            return translation.error(status, raw), _JSON
        return mask_secrets(raw.decode(errors="replace")).encode(), content_type
    logger.warning(
        "upstream error relayed with a neutral message",
        extra={
            "request_id": request_id,
            "upstream_status": status,
            "upstream_body": mask_secrets(raw[:_LOGGED_BODY_CHARS].decode(errors="replace")),
        },
    )
    message = neutral_message(status)
    if translation is not None:
        return translation.error(status, raw, message=message), _JSON
    upstream = _error_object(raw)
    kind = upstream.get("type")
    if wire is WireFormat.OPENAI:
        kind = (
            kind if isinstance(kind, str) else ("server_error" if status >= 500 else "invalid_request_error")
        )
        code = upstream.get("code")
        error = {
            "message": message,
            "type": kind,
            "param": None,
            "code": code if isinstance(code, str) else None,
        }
        return orjson.dumps({"error": error}), _JSON
    kind = kind if isinstance(kind, str) else anthropic_error_type(status)
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}}), _JSON


def _error_object(raw: bytes) -> dict[str, object]:
    """The `error` object of an upstream error body in either format ({} when there is none)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def neutral_message(status: int) -> str:
    """What a client is told of an upstream error about the operator's account or capacity."""
    if status in (401, 403):
        return f"The upstream provider refused the gateway's account ({status}); the operator can see why."
    if status == 429:
        return "The upstream provider is rate limiting the gateway (429); retry later."
    if status >= 500:
        return f"The upstream provider failed ({status}); retry later."
    return f"The upstream provider answered {status}; the operator can see why."
