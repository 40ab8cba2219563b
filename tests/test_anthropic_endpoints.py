"""The Anthropic SDK's other calls (issue 24, SPEC §6): `messages.count_tokens` (gated like `/v1/messages`,
never charged or logged) and `models.list()` in Anthropic's shape."""

from __future__ import annotations

import anthropic
import pytest
from helpers import register_user
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World
from test_friendkeys_proxy import friend_key

from trollllm.mockupstream import count_input_tokens

HELLO = [{"role": "user", "content": "How many tokens is this sentence please"}]


async def _history_total(world: World) -> int:
    page = (await world.gateway.client.get("/api/user/request-history", headers=world.user.auth)).json()
    total: int = page["total"]
    return total


async def test_count_tokens_answers_the_providers_count_and_charges_nothing(world: World) -> None:
    me_before = (await world.gateway.client.get("/api/user/me", headers=world.user.auth)).json()
    async with world.anthropic() as client:
        counted = await client.messages.count_tokens(model=ANTHROPIC_MODEL, messages=HELLO)  # type: ignore[arg-type]
    assert counted.input_tokens == count_input_tokens({"messages": HELLO})
    sent = world.mock.last_request
    assert sent.path == "/v1/messages/count_tokens" and sent.body["model"] == f"{ANTHROPIC_MODEL}-upstream"
    me_after = (await world.gateway.client.get("/api/user/me", headers=world.user.auth)).json()
    assert me_after["credits"] == me_before["credits"] and me_after["tokensUsed"] == me_before["tokensUsed"]
    assert await _history_total(world) == 0


async def test_count_tokens_is_rate_limited_like_messages(world: World) -> None:
    response = await world.gateway.client.post(
        "/v1/messages/count_tokens",
        headers={"x-api-key": world.user.api_key, "anthropic-version": "2023-06-01"},
        json={"model": ANTHROPIC_MODEL, "messages": HELLO},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-ratelimit-limit-requests"] == "300"  # the dev plan's RPM
    assert int(response.headers["x-ratelimit-remaining-requests"]) == 299


async def test_count_tokens_for_a_model_of_the_openai_format_is_400_naming_model(world: World) -> None:
    async with world.anthropic() as client:
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client.messages.count_tokens(model=OPENAI_MODEL, messages=HELLO)  # type: ignore[arg-type]
    assert "OpenAI format" in refused.value.message


async def test_count_tokens_on_a_free_plan_is_refused(world: World) -> None:
    free = await register_user(world.gateway, "freeloader")
    async with world.anthropic(free.api_key) as client:
        with pytest.raises(anthropic.PermissionDeniedError) as refused:
            await client.messages.count_tokens(model=ANTHROPIC_MODEL, messages=HELLO)  # type: ignore[arg-type]
    assert refused.value.body["error"]["type"] == "free_tier_restricted"  # type: ignore[index]


async def test_count_tokens_with_a_friend_key_needs_the_model_enabled(world: World) -> None:
    key = await friend_key(world, world.user, [{"modelId": ANTHROPIC_MODEL, "limitUsd": 1, "enabled": False}])
    async with world.anthropic(key) as client:
        with pytest.raises(anthropic.APIStatusError) as refused:
            await client.messages.count_tokens(model=ANTHROPIC_MODEL, messages=HELLO)  # type: ignore[arg-type]
        assert refused.value.status_code == 402
        await world.gateway.client.put(
            "/api/user/friend-key/limits",
            headers=world.user.auth,
            json={"modelLimits": [{"modelId": ANTHROPIC_MODEL, "limitUsd": 1, "enabled": True}]},
        )
        counted = await client.messages.count_tokens(model=ANTHROPIC_MODEL, messages=HELLO)  # type: ignore[arg-type]
    assert counted.input_tokens == count_input_tokens({"messages": HELLO})


async def test_an_unknown_model_is_404_on_count_tokens(world: World) -> None:
    async with world.anthropic() as client:
        with pytest.raises(anthropic.NotFoundError):
            await client.messages.count_tokens(model="nope", messages=HELLO)  # type: ignore[arg-type]


async def test_models_list_with_the_anthropic_sdk_is_in_anthropic_shape(world: World) -> None:
    await world.admin_call(
        "PUT", f"/api/admin/models/{ANTHROPIC_MODEL}",
        json={"provider": "anthropic", "upstreamModel": "u", "maxOutputTokens": 4096, "inputPricePerMTok": 1,
              "outputPricePerMTok": 1, "displayName": "Claude Test"},
    )  # fmt: skip
    async with world.anthropic() as client:
        models = [model async for model in client.models.list()]
        page = await client.models.list()
    assert [(m.id, m.type, m.display_name) for m in models] == [
        (ANTHROPIC_MODEL, "model", "Claude Test"),
        (OPENAI_MODEL, "model", "GPT Test"),  # derived from the id
    ]
    assert all(m.created_at.year >= 2024 for m in models)
    assert page.has_more is False and page.first_id == ANTHROPIC_MODEL and page.last_id == OPENAI_MODEL


async def test_models_list_without_anthropic_version_keeps_the_openai_shape(world: World) -> None:
    async with world.openai() as client:
        models = [model async for model in client.models.list()]
    assert {m.id for m in models} == {ANTHROPIC_MODEL, OPENAI_MODEL} and models[0].object == "model"
