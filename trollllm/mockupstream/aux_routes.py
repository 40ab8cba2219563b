"""The routes beside completions: embeddings (OpenAI), token counting (Anthropic) and the model list."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from aiohttp import web

from trollllm.mockupstream.anthropic_format import AnthropicWire
from trollllm.mockupstream.controls import MockRequestError, count_input_tokens
from trollllm.mockupstream.embeddings import embeddings_reply
from trollllm.mockupstream.faults import Faults
from trollllm.mockupstream.openai_format import OpenAIWire
from trollllm.mockupstream.recording import Recorder
from trollllm.mockupstream.wire_format import WireFormat, error_response


class AuxRoutes:
    """`/embeddings`, `/messages/count_tokens` and `/models`, with the same key checks as completions."""

    def __init__(self, recorder: Recorder, faults: Faults, models: Sequence[str]) -> None:
        self._recorder = recorder
        self._faults = faults
        self._models = tuple(models)
        self._openai = OpenAIWire()
        self._anthropic = AnthropicWire()

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        """OpenAI embeddings: deterministic vectors (see :func:`embeddings_reply`)."""
        body = await self._recorder.read_json(request)
        refusal = self._faults.key_refusal(self._openai, self._openai.api_key(request.headers))
        if refusal is None:
            refusal = self._faults.injected(self._openai)
        if refusal is not None:
            return refusal
        try:
            payload = embeddings_reply(body)
        except MockRequestError as exc:
            return error_response(self._openai, 400, str(exc))
        return web.Response(body=payload, content_type="application/json")

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        """Anthropic's token counting: ``{"input_tokens": count_input_tokens(body)}``, deterministic."""
        body = await self._recorder.read_json(request)
        refusal = self._faults.key_refusal(self._anthropic, self._anthropic.api_key(request.headers))
        if refusal is not None:
            return refusal
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return error_response(self._anthropic, 400, "model: Field required")
        if not isinstance(body.get("messages"), list):
            return error_response(self._anthropic, 400, "messages: Field required")
        payload = {"input_tokens": count_input_tokens(body)}
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        """The model ids, in OpenAI's list shape, to either format's key."""
        self._recorder.record(request, b"", None)
        wire: WireFormat = self._openai
        key = self._openai.api_key(request.headers)
        if not key:
            wire = self._anthropic
            key = self._anthropic.api_key(request.headers)
        refusal = self._faults.key_refusal(wire, key)
        if refusal is not None:
            return refusal
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": "trollllm-mock"}
            for model in self._models
        ]
        return web.Response(
            body=orjson.dumps({"object": "list", "data": data}), content_type="application/json"
        )
