"""The check of an own provider key on save (issue 15): one `GET {API root}/models` with the key; accepted:
`verified`; refused: saved and `invalid`; unreachable: saved and `unverified`."""

from __future__ import annotations

from byok_helpers import OWN_ANTHROPIC_KEY, OWN_OPENAI_KEY, own_keys, point_provider_at, save_own_key
from plan_helpers import free_port
from proxy_world import World

from trollllm.mockupstream import MockUpstream


async def test_a_key_the_provider_accepts_is_verified_on_save(world: World) -> None:
    await point_provider_at(world, "openai", world.mock.url + "/v1")
    saved = await save_own_key(world, world.user, "openai", OWN_OPENAI_KEY)
    assert saved["status"] == "verified" and saved["statusAt"] is not None
    check = world.mock.last_request
    assert (check.method, check.path) == ("GET", "/v1/models")
    assert check.headers["authorization"] == f"Bearer {OWN_OPENAI_KEY}"


async def test_an_anthropic_key_is_checked_with_x_api_key(world: World) -> None:
    await point_provider_at(world, "anthropic", world.mock.url)
    saved = await save_own_key(world, world.user, "anthropic", OWN_ANTHROPIC_KEY)
    assert saved["status"] == "verified"
    assert world.mock.last_request.headers["x-api-key"] == OWN_ANTHROPIC_KEY
    assert world.mock.last_request.headers["anthropic-version"]


async def test_a_key_the_provider_refuses_is_saved_and_marked_invalid(world: World) -> None:
    async with MockUpstream(keys=["sk-only-this-key-works"]) as strict:
        await point_provider_at(world, "openai", strict.url)
        saved = await save_own_key(world, world.user, "openai", OWN_OPENAI_KEY)
    assert saved["status"] == "invalid"
    assert (await own_keys(world, world.user))["openai"]["last4"] == "k9Q1"


async def test_an_unreachable_provider_leaves_the_key_saved_and_unverified(world: World) -> None:
    await point_provider_at(world, "openai", f"http://127.0.0.1:{free_port()}")
    saved = await save_own_key(world, world.user, "openai", OWN_OPENAI_KEY)
    assert saved["status"] == "unverified"
    assert (await own_keys(world, world.user))["openai"]["status"] == "unverified"


async def test_with_the_check_off_nothing_is_called(world: World) -> None:
    await point_provider_at(world, "openai", world.mock.url)
    world.state.settings.provider_key_check_timeout_s = 0
    saved = await save_own_key(world, world.user, "openai", OWN_OPENAI_KEY)
    assert saved["status"] == "unverified" and world.mock.request_count == 0
