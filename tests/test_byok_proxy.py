"""Requests on the user's own provider keys (issue 15, part 2; SPEC §1, §5, §6) with the official SDKs:
sent upstream with the user's key, logged `isByok` with their real usage, never charged; a free user may
use them; a Friend Key never does; a provider's 401 names the key by its last 4 and marks it invalid."""

from __future__ import annotations

import anthropic
import openai
import pytest
from byok_helpers import (
    DEV_GRANT,
    HELLO,
    OWN_ANTHROPIC_KEY,
    OWN_OPENAI_KEY,
    charges_and_holds,
    credits,
    log_row,
    own_keys,
    point_provider_at,
    save_own_key,
)
from helpers import register_user
from plan_helpers import edit_plan, set_user
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World
from test_friendkeys_proxy import friend_key

from trollllm.mockupstream import DEFAULT_REPLY_TOKENS, MockUpstream, count_input_tokens
from trollllm.money import Money


async def test_openai_sdk_request_goes_upstream_with_the_users_own_key_and_is_not_charged(
    any_world: World,
) -> None:
    await point_provider_at(any_world, "openai", any_world.mock.url + "/v1")
    await save_own_key(any_world, any_world.user, "openai", OWN_OPENAI_KEY)
    async with any_world.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=HELLO)
    assert raw.parse().choices[0].message.content
    assert any_world.mock.last_request.headers["authorization"] == f"Bearer {OWN_OPENAI_KEY}"
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == Money.ZERO
    assert await credits(any_world, any_world.user) == DEV_GRANT
    assert await charges_and_holds(any_world) == (0, 0)
    row = await log_row(any_world, any_world.user, raw.headers["x-request-id"])
    assert row["isByok"] is True and row["creditsCost"] == 0
    assert row["inputTokens"] == count_input_tokens({"messages": HELLO})
    assert row["outputTokens"] == DEFAULT_REPLY_TOKENS


async def test_anthropic_sdk_stream_goes_upstream_with_the_users_own_key_and_is_not_charged(
    any_world: World,
) -> None:
    await point_provider_at(any_world, "anthropic", any_world.mock.url)
    await save_own_key(any_world, any_world.user, "anthropic", OWN_ANTHROPIC_KEY)
    async with (
        any_world.anthropic() as client,
        client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=100, messages=HELLO) as stream,
    ):
        message = await stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert message.content
    assert any_world.mock.last_request.headers["x-api-key"] == OWN_ANTHROPIC_KEY
    assert await credits(any_world, any_world.user) == DEV_GRANT
    assert await charges_and_holds(any_world) == (0, 0)
    row = await log_row(any_world, any_world.user, request_id)
    assert row["isByok"] is True and row["isStream"] is True and row["creditsCost"] == 0
    assert (row["inputTokens"], row["outputTokens"]) == (
        message.usage.input_tokens,
        message.usage.output_tokens,
    )


async def test_the_own_key_goes_to_the_provider_rows_base_url_not_the_factory_keys(world: World) -> None:
    async with MockUpstream() as provider_api:
        await point_provider_at(world, "openai", provider_api.url + "/v1")
        await save_own_key(world, world.user, "openai", OWN_OPENAI_KEY)
        provider_api.clear_requests()  # the check on save
        async with world.openai() as client:
            await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
        assert provider_api.request_count == 1 and world.mock.request_count == 0
        assert provider_api.last_request.path == "/v1/chat/completions"


async def test_after_the_own_key_is_deleted_the_same_request_is_charged(any_world: World) -> None:
    await point_provider_at(any_world, "openai", any_world.mock.url)
    await save_own_key(any_world, any_world.user, "openai", OWN_OPENAI_KEY)
    deleted = await any_world.gateway.client.delete(
        "/api/user/provider-keys/openai", headers=any_world.user.auth
    )
    assert deleted.status_code == 204
    async with any_world.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=HELLO)
    cost = Money.from_usd(raw.headers["x-trollllm-cost-usd"])
    assert cost > Money.ZERO
    assert any_world.mock.last_request.headers["authorization"] == "Bearer fk-openai-one"
    assert await credits(any_world, any_world.user) == DEV_GRANT - cost
    assert await charges_and_holds(any_world) == (1, 0)
    assert (await log_row(any_world, any_world.user, raw.headers["x-request-id"]))["isByok"] is False


async def test_a_free_user_with_an_own_key_is_served(any_world: World) -> None:
    await point_provider_at(any_world, "openai", any_world.mock.url)
    bob = await register_user(any_world.gateway, "bob")  # free plan: no API access, no credits
    await save_own_key(any_world, bob, "openai", OWN_OPENAI_KEY)
    async with any_world.openai(bob.api_key) as client:
        completion = await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
    assert completion.choices[0].message.content
    assert await credits(any_world, bob) == Money.ZERO


async def test_a_free_user_without_an_own_key_gets_403_free_tier_restricted(world: World) -> None:
    bob = await register_user(world.gateway, "bob")
    async with world.openai(bob.api_key) as client:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
    assert refused.value.status_code == 403
    assert refused.value.body["type"] == "free_tier_restricted"  # type: ignore[index]


async def test_a_free_users_own_key_for_another_provider_does_not_open_this_one(world: World) -> None:
    bob = await register_user(world.gateway, "bob")
    await save_own_key(world, bob, "anthropic", OWN_ANTHROPIC_KEY)
    async with world.openai(bob.api_key) as client:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
    assert refused.value.body["type"] == "free_tier_restricted"  # type: ignore[index]
    assert world.mock.request_count == 0


async def test_own_key_requests_are_exempt_from_the_monthly_token_limit(world: World) -> None:
    await point_provider_at(world, "openai", world.mock.url)
    await set_user(world, monthly_tokens_used=10**12)  # far past the dev plan's limit
    async with world.openai() as client:
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
        await save_own_key(world, world.user, "openai", OWN_OPENAI_KEY)
        completion = await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
    assert completion.choices[0].message.content


async def test_own_key_tokens_do_not_count_against_the_monthly_limit(world: World) -> None:
    await point_provider_at(world, "openai", world.mock.url)
    await save_own_key(world, world.user, "openai", OWN_OPENAI_KEY)
    async with world.openai() as client:
        await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
    billing = (await world.gateway.client.get("/api/user/billing", headers=world.user.auth)).json()
    assert billing["monthlyTokensUsed"] == 0


async def test_the_free_plans_byok_rpm_limits_own_key_requests(world: World) -> None:
    await point_provider_at(world, "openai", world.mock.url)
    await edit_plan(world, "free", byokRpm=2)
    bob = await register_user(world.gateway, "bob")
    await save_own_key(world, bob, "openai", OWN_OPENAI_KEY)
    world.mock.clear_requests()  # the check on save
    async with world.openai(bob.api_key) as client:
        for _ in range(2):
            await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
    assert limited.value.response.headers["x-ratelimit-limit-requests"] == "2"
    assert world.mock.request_count == 2


async def test_the_free_plans_byok_rpm_is_60_by_default(world: World) -> None:
    plans = (await world.admin_call("GET", "/api/admin/plans")).json()["plans"]
    assert next(plan for plan in plans if plan["name"] == "free")["byokRpm"] == 60


async def test_a_friend_key_never_uses_its_owners_own_provider_keys(any_world: World) -> None:
    await point_provider_at(any_world, "openai", any_world.mock.url)
    await save_own_key(any_world, any_world.user, "openai", OWN_OPENAI_KEY)
    key = await friend_key(
        any_world, any_world.user, [{"modelId": OPENAI_MODEL, "limitUsd": 5, "enabled": True}]
    )
    async with any_world.openai(key) as client:
        raw = await client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=HELLO)
    assert any_world.mock.last_request.headers["authorization"] == "Bearer fk-openai-one"
    cost = Money.from_usd(raw.headers["x-trollllm-cost-usd"])
    assert cost > Money.ZERO
    assert await credits(any_world, any_world.user) == DEV_GRANT - cost


async def test_a_401_on_the_own_key_names_it_masked_and_marks_it_invalid(any_world: World) -> None:
    await point_provider_at(any_world, "openai", any_world.mock.url)
    await save_own_key(any_world, any_world.user, "openai", OWN_OPENAI_KEY)
    any_world.mock.set_key_status(OWN_OPENAI_KEY, 401)
    async with any_world.openai() as client:
        with pytest.raises(openai.AuthenticationError) as refused:
            await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
    error = refused.value.body
    assert isinstance(error, dict) and error["type"] == "provider_key_invalid"
    assert "****...****k9Q1" in error["message"] and error["keyLast4"] == "k9Q1"
    assert OWN_OPENAI_KEY not in refused.value.response.text
    assert (await own_keys(any_world, any_world.user))["openai"]["status"] == "invalid"
    assert await credits(any_world, any_world.user) == DEV_GRANT


async def test_a_401_on_the_own_key_is_in_the_anthropic_error_format(world: World) -> None:
    await point_provider_at(world, "anthropic", world.mock.url)
    await save_own_key(world, world.user, "anthropic", OWN_ANTHROPIC_KEY)
    world.mock.set_key_status(OWN_ANTHROPIC_KEY, 401)
    async with world.anthropic() as client:
        with pytest.raises(anthropic.AuthenticationError) as refused:
            await client.messages.create(model=ANTHROPIC_MODEL, max_tokens=50, messages=HELLO)
    body = refused.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "provider_key_invalid"
    assert "****...****z2W5" in body["error"]["message"]


async def test_a_401_on_the_own_key_touches_no_factory_key(world: World) -> None:
    await point_provider_at(world, "openai", world.mock.url)
    await save_own_key(world, world.user, "openai", OWN_OPENAI_KEY)
    world.mock.set_key_status(OWN_OPENAI_KEY, 401)
    world.mock.clear_requests()  # the check on save
    async with world.openai() as client:
        for _ in range(3):
            with pytest.raises(openai.AuthenticationError):
                await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
    await world.state.upstream.flush()
    keys = (await world.admin_call("GET", "/api/admin/factory-keys")).json()
    keys = keys.get("keys", keys) if isinstance(keys, dict) else keys
    assert {(key["provider"], key["status"], key["lastError"]) for key in keys} == {
        ("openai", "healthy", None),
        ("anthropic", "healthy", None),
    }
    assert world.mock.request_count == 3  # each went to the own key's provider, none to a factory key


async def test_a_key_that_works_again_is_marked_verified(world: World) -> None:
    await point_provider_at(world, "openai", world.mock.url)
    world.mock.set_key_status(OWN_OPENAI_KEY, 503)  # the check on save cannot tell
    await save_own_key(world, world.user, "openai", OWN_OPENAI_KEY)
    assert (await own_keys(world, world.user))["openai"]["status"] == "unverified"
    world.mock.set_key_status(OWN_OPENAI_KEY, None)
    async with world.openai() as client:
        await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
    assert (await own_keys(world, world.user))["openai"]["status"] == "verified"


async def test_a_free_user_lists_only_the_models_of_their_own_keys(world: World) -> None:
    bob = await register_user(world.gateway, "bob")
    await save_own_key(world, bob, "anthropic", OWN_ANTHROPIC_KEY)
    async with world.openai(bob.api_key) as client:
        listed = [model.id async for model in client.models.list()]
    assert listed == [ANTHROPIC_MODEL]


async def test_a_key_refused_by_the_provider_is_shown_invalid_on_the_settings_page(world: World) -> None:
    await point_provider_at(world, "openai", world.mock.url)
    await save_own_key(world, world.user, "openai", OWN_OPENAI_KEY)
    world.mock.set_key_status(OWN_OPENAI_KEY, 401)
    async with world.openai() as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
    page = await world.gateway.client.get("/dashboard/settings/api-keys", headers=world.user.auth)
    assert "Invalid: the provider refused it" in page.text and "…k9Q1" in page.text
    assert OWN_OPENAI_KEY not in page.text
