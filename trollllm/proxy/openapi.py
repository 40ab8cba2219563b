"""The proxy endpoints in the app's OpenAPI document (`/openapi.json`, rendered on `/docs`).

They are served by `trollllm.proxy.fastpath`, beside FastAPI, so FastAPI does not see them: each is
described here by hand, and `proxy_paths` walks the served tables (`trollllm.proxy.endpoints`), so a path or
method served without a description here is still listed (with a generic body) rather than missing.
Request bodies are inline schemas with the bounds the gate enforces (a fuzzer narrows their `model`).
"""

from __future__ import annotations

from typing import Any

from trollllm.proxy.endpoints import BY_ID_PATH, served_endpoints

TAG_OPENAI = "OpenAI format"
TAG_ANTHROPIC = "Anthropic format"
AUTHENTICATION = (
    "**Authentication**: your gateway API key (`sk-trollllm-…`) or a Friend Key (`sk-trollllm-friend-…`), "
    "as `Authorization: Bearer <key>` or in the `x-api-key` header. A plan with API access is needed "
    "(403 `free_tier_restricted` otherwise, unless the model runs on your own provider key)."
)
_CHARGED = (
    " The request is held at its most expensive (input bound and `max_tokens`) before it goes upstream "
    "(402 when your balance cannot cover it) and charged exactly on its usage; `x-trollllm-cost-usd` "
    "carries the cost of a non-streamed answer."
)
QUICK_START = f"""\
The gateway speaks the OpenAI and the Anthropic APIs under `/v1`: point an official SDK at it with your key
and call any enabled model through either format (a model of the other format is translated both ways).
The `/api/*` operations below are the dashboard's own JSON API (a session token from `/api/auth/login`).

{AUTHENTICATION}

### Quick start

1. Sign in on the dashboard and copy your API key (Dashboard → API key → Copy).
2. `export TROLLLLM_API_KEY=sk-trollllm-…`
3. List the models: `curl $BASE/v1/models -H "Authorization: Bearer $TROLLLLM_API_KEY"`
4. Call one:

```
curl $BASE/v1/chat/completions -H "Authorization: Bearer $TROLLLLM_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{{"model": "MODEL_ID", "messages": [{{"role": "user", "content": "Hello"}}]}}'
```

OpenAI SDK: `OpenAI(base_url="$BASE/v1", api_key=...)`; Anthropic SDK: `Anthropic(base_url="$BASE",
api_key=...)`; Claude Code: `ANTHROPIC_BASE_URL=$BASE`; Codex CLI: a provider with `base_url = "$BASE/v1"`
and `wire_api = "responses"`. (`$BASE` is this server's address.)

Errors come in the endpoint's own format: `{{"error": {{"type", "message", "code"}}}}` on the OpenAI-format
endpoints, `{{"type": "error", "error": {{"type", "message"}}}}` on `/v1/messages`. Every answer carries
`x-request-id`; your request history lists every request, refused ones included.
"""

_MESSAGE = {
    "type": "object",
    "properties": {"role": {"type": "string"}, "content": {}},
    "required": ["role", "content"],
}
_MESSAGES = {"type": "array", "items": _MESSAGE, "minItems": 1}
_MAX_TOKENS = {"type": "integer", "minimum": 1, "description": "at most the model's maximum output"}
_OPENAI_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "code": {"type": "string"},
            },
        }
    },
}
_ANTHROPIC_ERROR = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["error"]},
        "error": {
            "type": "object",
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
_REFUSALS = {
    "400": "Invalid request: the message names the field",
    "401": "`invalid_api_key` (no, unknown, rotated, paused or expired key) or `owner_inactive`",
    "402": "`insufficient_credits`, or for a Friend Key `friend_key_model_not_allowed`, "
    "`friend_key_model_limit_exceeded` or `owner_credits_exhausted`",
    "403": "`free_tier_restricted`: the plan has no API access",
    "404": "`model_not_found`",
    "429": "`rate_limit_exceeded` (with `Retry-After`) or a plan limit",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(
    tag: str,
    summary: str,
    description: str,
    answer: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    refusals: tuple[str, ...] = tuple(_REFUSALS),
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    error = _ANTHROPIC_ERROR if tag == TAG_ANTHROPIC else _OPENAI_ERROR
    responses: dict[str, Any] = {"200": answer}
    for status in refusals:
        responses[status] = _json(error, _REFUSALS[status])
    operation: dict[str, Any] = {
        "tags": [tag],
        "summary": summary,
        "description": f"{description}\n\n{AUTHENTICATION}",
        "security": [{"gatewayKey": []}, {"anthropicKey": []}],
        "responses": responses,
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if parameters:
        operation["parameters"] = parameters
    return operation


_RESPONSE_ID = [
    {
        "name": "response_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "maxLength": 64},
        "description": "The `id` of a response you stored (`store`, the default, on `POST /v1/responses`)",
    }
]
_STORED = ("401", "404")

OPERATIONS: dict[str, dict[str, dict[str, Any]]] = {
    "/v1/chat/completions": {
        "POST": _operation(
            TAG_OPENAI,
            "Create a chat completion (OpenAI)",
            "OpenAI chat completions, streamed (`stream: true`, server-sent events) or not. Any enabled chat "
            "model answers; fields not listed are forwarded as sent." + _CHARGED,
            _json(
                {
                    "type": "object",
                    "description": "An OpenAI `chat.completion` (or its chunks when streamed)",
                },
                "The completion, with `usage`",
            ),
            body={
                "type": "object",
                "properties": {
                    "model": {"type": "string"},
                    "messages": _MESSAGES,
                    "max_tokens": _MAX_TOKENS,
                    "max_completion_tokens": {"type": "integer", "minimum": 1},
                    "stream": {"type": "boolean"},
                    "n": {"type": "integer", "minimum": 1, "maximum": 128},
                },
                "required": ["model", "messages"],
            },
        )
    },
    "/v1/messages": {
        "POST": _operation(
            TAG_ANTHROPIC,
            "Create a message (Anthropic)",
            "Anthropic messages, streamed or not; `anthropic-version` and `anthropic-beta` are honoured "
            "(a beta the operator refuses is a 400). Any enabled chat model answers; fields not listed "
            "are forwarded as sent." + _CHARGED,
            _json({"type": "object", "description": "An Anthropic `message`"}, "The message, with `usage`"),
            body={
                "type": "object",
                "properties": {
                    "model": {"type": "string"},
                    "messages": _MESSAGES,
                    "max_tokens": _MAX_TOKENS,
                    "system": {},
                    "stream": {"type": "boolean"},
                },
                "required": ["model", "messages", "max_tokens"],
            },
        )
    },
    "/v1/messages/count_tokens": {
        "POST": _operation(
            TAG_ANTHROPIC,
            "Count a message's input tokens (Anthropic)",
            "The input tokens a `/v1/messages` request would use, counted by the provider for a model of "
            "the Anthropic format. Not charged; checked like a request (plan, rate limit, model).",
            _json(
                {"type": "object", "properties": {"input_tokens": {"type": "integer"}}},
                "`{input_tokens}`",
            ),
            body={
                "type": "object",
                "properties": {"model": {"type": "string"}, "messages": _MESSAGES, "system": {}},
                "required": ["model", "messages"],
            },
            refusals=("400", "401", "403", "404", "429"),
        )
    },
    "/v1/responses": {
        "POST": _operation(
            TAG_OPENAI,
            "Create a response (OpenAI Responses API)",
            "The OpenAI Responses API (what Codex CLI speaks), streamed or not: `input` as a string or "
            "items, `instructions`, `previous_response_id` to continue a stored response. Passed as is to "
            "a provider that serves it, translated for the others. Stored (`store`, default true) for 30 "
            "days, for you alone." + _CHARGED,
            _json({"type": "object", "description": "An OpenAI `response`"}, "The response, with `usage`"),
            body={
                "type": "object",
                "properties": {
                    "model": {"type": "string"},
                    "input": {},
                    "instructions": {"type": "string"},
                    "max_output_tokens": {"type": "integer", "minimum": 1},
                    "previous_response_id": {"type": "string"},
                    "store": {"type": "boolean"},
                    "stream": {"type": "boolean"},
                },
                "required": ["model", "input"],
            },
        )
    },
    BY_ID_PATH: {
        "GET": _operation(
            TAG_OPENAI,
            "Read a stored response",
            "A response you stored, as it was answered (404 for an unknown id or another caller's).",
            _json({"type": "object", "description": "An OpenAI `response`"}, "The stored response"),
            refusals=_STORED,
            parameters=_RESPONSE_ID,
        ),
        "DELETE": _operation(
            TAG_OPENAI,
            "Delete a stored response",
            "Deletes a response you stored (404 for an unknown id or another caller's).",
            _json(
                {
                    "type": "object",
                    "properties": {"id": {"type": "string"}, "deleted": {"type": "boolean"}},
                },
                "`{id, object, deleted: true}`",
            ),
            refusals=_STORED,
            parameters=_RESPONSE_ID,
        ),
    },
    "/v1/embeddings": {
        "POST": _operation(
            TAG_OPENAI,
            "Create embeddings (OpenAI)",
            "Vectors for `input` (a string or a list of them) from an enabled model of kind `embedding`; "
            "a chat model is a 400 naming `model`." + _CHARGED,
            _json({"type": "object", "description": "An OpenAI embeddings `list`"}, "The embeddings"),
            body={
                "type": "object",
                "properties": {
                    "model": {"type": "string"},
                    "input": {},
                    "encoding_format": {"type": "string", "enum": ["float", "base64"]},
                    "dimensions": {"type": "integer", "minimum": 1},
                },
                "required": ["model", "input"],
            },
        )
    },
    "/v1/models": {
        "GET": _operation(
            TAG_OPENAI,
            "List the models",
            "Every enabled model your key may call: the OpenAI list by default, Anthropic's shape "
            "(`data` with `display_name`, `has_more`, `first_id`, `last_id`) when `anthropic-version` is "
            "sent. Not charged.",
            _json(
                {
                    "type": "object",
                    "properties": {"object": {"type": "string"}, "data": {"type": "array", "items": {}}},
                },
                "The model list",
            ),
            refusals=("401", "403", "429"),
        )
    },
}
"""Path -> method -> OpenAPI operation, for every proxy endpoint."""


def proxy_paths() -> dict[str, dict[str, Any]]:
    """OpenAPI path items for every path and method the proxy serves."""
    paths: dict[str, dict[str, Any]] = {}
    for path, methods in served_endpoints().items():
        described = OPERATIONS.get(path, {})
        item: dict[str, Any] = {}
        for method in methods:
            item[method.lower()] = described.get(method) or _operation(
                TAG_OPENAI,
                f"{method} {path}",
                "A proxy endpoint.",
                _json({"type": "object"}, "The upstream's answer"),
                body={"type": "object"} if method in ("POST", "PUT", "PATCH") else None,
            )
        paths[path] = item
    return paths


SECURITY_SCHEMES = {
    "gatewayKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "Your gateway API key or a Friend Key, as `Authorization: Bearer <key>`",
    },
    "anthropicKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "The same key in Anthropic's header (what the Anthropic SDK and Claude Code send)",
    },
}
"""How the proxy endpoints take their key."""
