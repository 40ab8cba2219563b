"""The proxy endpoints in the app's OpenAPI document.

They are served by `trollllm.proxy.fastpath`, beside FastAPI, so FastAPI does not see them; every path and
method of `PROXY_ENDPOINTS` is described here instead (a path with no body schema below gets a generic
JSON object, so a new endpoint is in the document from its first line).
"""

from __future__ import annotations

from typing import Any

_MESSAGE = {
    "type": "object",
    "properties": {"role": {"type": "string"}, "content": {}},
    "required": ["role", "content"],
}
_BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "messages": {"type": "array", "items": _MESSAGE, "minItems": 1},
            "max_tokens": {"type": "integer", "minimum": 1, "description": "at most the model's maximum"},
            "max_completion_tokens": {"type": "integer", "minimum": 1},
            "stream": {"type": "boolean"},
            "n": {"type": "integer", "minimum": 1, "maximum": 128},
        },
        "required": ["model", "messages"],
        "description": "OpenAI chat completions; other fields are forwarded as sent",
    },
    "/v1/messages": {
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "messages": {"type": "array", "items": _MESSAGE, "minItems": 1},
            "max_tokens": {"type": "integer", "minimum": 1, "description": "at most the model's maximum"},
            "system": {},
            "stream": {"type": "boolean"},
        },
        "required": ["model", "messages", "max_tokens"],
        "description": "Anthropic messages; other fields are forwarded as sent",
    },
}
_ERROR = {"description": "An error in the endpoint's own format (OpenAI or Anthropic shape)"}


def proxy_paths(endpoints: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """OpenAPI path items for `endpoints` (path -> method -> handler)."""
    paths: dict[str, dict[str, Any]] = {}
    for path, methods in endpoints.items():
        item: dict[str, Any] = {}
        for method in methods:
            operation: dict[str, Any] = {
                "tags": ["proxy"],
                "summary": f"{method} {path}",
                "security": [{"gatewayKey": []}, {"anthropicKey": []}],
                "responses": {"200": {"description": "The upstream's answer"}, "default": _ERROR},
            }
            if method in ("POST", "PUT", "PATCH"):
                schema = _BODIES.get(path, {"type": "object"})
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": schema}},
                }
            item[method.lower()] = operation
        paths[path] = item
    return paths


SECURITY_SCHEMES = {
    "gatewayKey": {"type": "http", "scheme": "bearer", "description": "a gateway API key or Friend Key"},
    "anthropicKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
}
"""How the proxy endpoints take their key."""
