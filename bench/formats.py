"""The cell formats of bench/run.py: which endpoint a cell calls, on which model, and which request its
direct row sends the mock.

A format is the client's endpoint, or `client->model` for a translated cell:
- `openai`, `anthropic`: chat completions on `bench-gpt`, messages on `bench-claude` (each in its own format);
- `openai->anthropic`, `anthropic->openai`: the one endpoint on the other format's model (issue 16);
- `responses`: `/v1/responses` on `bench-gpt`, whose `openai` provider row has `responsesApi` (the native
  passthrough; its direct row is the mock's own `/v1/responses`);
- `responses->chat`: `/v1/responses` on `bench-groq`, an OpenAI-format row without a Responses API
  (translated to chat completions; direct: the mock's chat completions);
- `responses->anthropic`: `/v1/responses` on `bench-claude` (translated to messages; direct: messages).

A Responses request is sent with `store: false`, as Codex sends it: the cells measure the route, not the
stored-response write a `store: true` request adds.
"""

from __future__ import annotations

import orjson
from loadgen import Target
from stack import CHAT_MODEL, MODELS

PROMPT = "Write a short deterministic reply for the TrollLLM benchmark."
MAX_TOKENS = 64  # the mock answers min(16, max_tokens) tokens: 16 tokens, 16 content chunks
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages", "responses": "/v1/responses"}
TRANSLATED = ("openai->anthropic", "anthropic->openai")
RESPONSES = ("responses", "responses->chat", "responses->anthropic")
FORMATS = ("openai", "anthropic", *TRANSLATED, *RESPONSES)
BASELINE = {"responses": "openai", "responses->chat": "openai", "responses->anthropic": "anthropic"}
"""The cell a Responses cell's gateway CPU is compared with: chat completions or messages on the same
upstream format (a translated chat cell's is the model's own format, `client->model`)."""
_DONE = {
    "json": b'"usage"',
    "stream_openai": b"data: [DONE]",
    "stream_anthropic": b"event: message_stop",
    "stream_responses": b"event: response.completed",
}


def cell_route(fmt: str) -> tuple[str, str, str, str]:
    """(the client's format, the gateway's model, the direct row's format, its model at the mock)."""
    if fmt == "responses":
        return "responses", MODELS["openai"][0], "responses", MODELS["openai"][1]
    if fmt == "responses->chat":
        return "responses", CHAT_MODEL[0], "openai", CHAT_MODEL[2]
    client, _, model_fmt = fmt.partition("->")
    model_fmt = model_fmt or client
    return client, MODELS[model_fmt][0], model_fmt, MODELS[model_fmt][1]


def make_target(base_url: str, key: str, model: str, mode: str, fmt: str) -> Target:
    """The one request of a cell in the client format `fmt`, identical for the gateway and the mock but
    for the key and model."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    body: dict[str, object]
    if fmt == "responses":
        body = {"model": model, "input": PROMPT, "max_output_tokens": MAX_TOKENS, "store": False}
    else:
        body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": MAX_TOKENS}
    body["stream"] = mode == "stream"
    headers = {"Content-Type": "application/json"}
    if fmt == "anthropic":
        headers.update({"x-api-key": key, "anthropic-version": "2023-06-01"})
    else:
        headers["Authorization"] = f"Bearer {key}"
    done = _DONE["json"] if mode == "json" else _DONE[f"stream_{fmt}"]
    error = b'"error":{' if fmt == "responses" else b'"error"'  # a Response carries `"error":null`
    return Target(host, int(port), PATHS[fmt], headers, orjson.dumps(body), done, error)
