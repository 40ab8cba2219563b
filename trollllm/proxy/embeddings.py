"""`POST /v1/embeddings` (SPEC §6): models of kind `embedding` on OpenAI-format providers, through the same
gate; the input is held by its size (a token is at least one byte), billed `usage.prompt_tokens` × the
input price, and logged. Nothing is generated, so no output is held (`choices` 0)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from trollllm.crypto import mask_secrets
from trollllm.errors import InvalidRequest
from trollllm.money import TokenUsage
from trollllm.proxy.fastpath import ProxyCall, ProxyHandler, ProxyResponse
from trollllm.proxy.gate import authenticate, presented_key
from trollllm.proxy.relay import MalformedReply, rewrite_json_reply
from trollllm.proxy.requests import ProxyRequest, StreamRelay, parse_model_body
from trollllm.proxy.routes import forward
from trollllm.state import AppState
from trollllm.translate import UntranslatableReply
from trollllm.translate.replies import openai_error
from trollllm.wire import WireFormat

_INPUT_MARGIN_TOKENS = 64


class EmbeddingsRoute:
    """An embeddings request: forwarded with the upstream model; its answer with the client's."""

    upstream_wire = WireFormat.EMBEDDINGS
    hidden_input_tokens = 0

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def upstream_body(self, upstream_model: str, max_tokens: int, stream: bool) -> bytes:
        """The body with the upstream model (no output bound: nothing is generated)."""
        return orjson.dumps({**self.body, "model": upstream_model})

    def reply(self, raw: bytes, client_model: str) -> tuple[bytes, TokenUsage | None]:
        """The embeddings with the client's model name; usage: `prompt_tokens` as input (OpenAI's usage)."""
        try:
            return rewrite_json_reply(raw, WireFormat.OPENAI, client_model)
        except MalformedReply as exc:
            raise UntranslatableReply from exc

    def error(self, status: int, raw: bytes, *, message: str | None = None) -> bytes:
        """The upstream's error (OpenAI shape already), keys masked, or its message replaced."""
        if message is not None:
            return openai_error(status, raw, message=message)
        return mask_secrets(raw.decode(errors="replace")).encode()

    def stream(self, client_model: str, client_wants_usage: bool) -> StreamRelay:
        """Never called: embeddings do not stream."""
        raise AssertionError("embeddings are not streamed")


async def create_embeddings(state: AppState, call: ProxyCall) -> ProxyResponse:
    """`POST /v1/embeddings`."""
    started = time.perf_counter()
    caller = await authenticate(state, presented_key(call.headers, WireFormat.EMBEDDINGS))
    body, model = parse_model_body(call.body)
    value = body.get("input")
    if not isinstance(value, str | list) or not value:
        raise InvalidRequest("`input` is required: a string or a non-empty array", field="input")
    catalog_model = await state.catalog.get(model)
    if catalog_model is not None and catalog_model.wire is not WireFormat.OPENAI:
        raise InvalidRequest(
            f"`{model}` is served by provider `{catalog_model.provider}`, which has no embeddings API here",
            field="model",
        )
    parsed = ProxyRequest(
        wire=WireFormat.EMBEDDINGS,
        body=body,
        model_id=model,
        stream=False,
        requested_max_tokens=None,
        max_tokens_field="max_tokens",
        input_bound_tokens=len(call.body) + _INPUT_MARGIN_TOKENS,
        client_wants_usage=False,
        choices=0,  # nothing is generated: no output held
        translation=EmbeddingsRoute(body),
        model_kind="embedding",
    )
    return await forward(state, call, caller, parsed, started)


EMBEDDINGS_ENDPOINTS: dict[str, dict[str, ProxyHandler]] = {"/v1/embeddings": {"POST": create_embeddings}}
