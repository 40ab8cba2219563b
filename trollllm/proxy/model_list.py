"""`GET /v1/models`: the enabled models the caller may use, in the OpenAI list shape, or in Anthropic's
when the request carries `anthropic-version` (as the Anthropic SDKs and Claude Code send it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from trollllm.byok.service import own_key_providers
from trollllm.friendkeys.caps import allowed_model_ids
from trollllm.pricing.catalog import CatalogModel
from trollllm.proxy.fastpath import ProxyCall, ProxyResponse, RawResponse
from trollllm.proxy.gate import authenticate, presented_key
from trollllm.state import AppState
from trollllm.wire import WireFormat

_JSON = (b"content-type", b"application/json")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def list_models(state: AppState, call: ProxyCall) -> ProxyResponse:
    """`GET /v1/models`: only the models the caller may use, in the shape of the caller's SDK."""
    caller = await authenticate(state, presented_key(call.headers, WireFormat.ANTHROPIC))
    models = await state.catalog.enabled()
    if caller.friend_key_id is not None:  # a Friend Key may use only the models its owner enabled
        async with state.engine.connect() as connection:
            allowed = await allowed_model_ids(connection, caller.friend_key_id)
        models = [m for m in models if m.model_id in allowed]
    elif not caller.api_access:  # a plan without API access: only the models of the user's own keys
        providers = await own_key_providers(state, caller.user_id)
        models = [m for m in models if m.provider in providers]
    plan_models = caller.plan.models
    if plan_models is not None:  # the plan's models, and those of the user's own keys (not the plan's)
        own = await own_key_providers(state, caller.user_id) if caller.has_provider_keys else set()
        models = [m for m in models if m.model_id in plan_models or m.provider in own]
    body = anthropic_list(models) if "anthropic-version" in call.headers else openai_list(models)
    return RawResponse(200, orjson.dumps(body), [_JSON, (b"x-request-id", call.request_id.encode())])


def openai_list(models: list[CatalogModel]) -> dict[str, Any]:
    """OpenAI's `{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}`."""
    data = [{"id": m.model_id, "object": "model", "created": 0, "owned_by": m.provider} for m in models]
    return {"object": "list", "data": data}


def anthropic_list(models: list[CatalogModel]) -> dict[str, Any]:
    """Anthropic's page: `data` of `{type: "model", id, display_name, created_at}`, `has_more` (always
    false: one page holds every model), `first_id`, `last_id`."""
    data = [
        {
            "type": "model",
            "id": m.model_id,
            "display_name": m.display_name,
            "created_at": (m.created_at or _EPOCH).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for m in models
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
