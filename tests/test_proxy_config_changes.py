"""Admin changes apply to the next proxied request (SPEC §4, §6): prices, model state, factory keys —
on this instance at once, and on another instance sharing Redis within a second."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import AppFactory, make_settings
from forwarding_proxy import ForwardingProxy
from proxy_world import OPENAI_MODEL, World, build_world, serve
from services import REDIS_URL

from trollllm.clock import ManualClock
from trollllm.mockupstream import DEFAULT_REPLY_TOKENS, MockUpstream
from trollllm.money import Money

HELLO = [{"role": "user", "content": "hello"}]


async def _cost(world: World) -> Money:
    async with world.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=HELLO)
    return Money.from_usd(raw.headers["x-trollllm-cost-usd"])


async def _set_output_price(world: World, usd: float) -> None:
    rows = (await world.admin_call("GET", "/api/admin/models")).json()
    row = next(m for m in rows if m["modelId"] == OPENAI_MODEL)
    await world.admin_call(
        "PUT", f"/api/admin/models/{OPENAI_MODEL}", json={**row, "outputPricePerMTok": usd}
    )


async def test_price_change_applies_to_the_next_request(world: World) -> None:
    before = await _cost(world)
    await _set_output_price(world, 50)
    after = await _cost(world)
    assert after - before == Money(DEFAULT_REPLY_TOKENS * 25_000)  # 16 tokens × $25 more per MTok


async def test_disabling_a_model_applies_to_the_next_request(world: World) -> None:
    await _cost(world)
    rows = (await world.admin_call("GET", "/api/admin/models")).json()
    row = next(m for m in rows if m["modelId"] == OPENAI_MODEL)
    await world.admin_call("PUT", f"/api/admin/models/{OPENAI_MODEL}", json={**row, "enabled": False})
    response = await world.gateway.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {world.user.api_key}"},
        json={"model": OPENAI_MODEL, "messages": HELLO},
    )
    assert response.status_code == 404


async def test_disabling_every_factory_key_applies_to_the_next_request(world: World) -> None:
    await _cost(world)
    for key in (await world.admin_call("GET", "/api/admin/factory-keys")).json():
        await world.admin_call("PATCH", f"/api/admin/factory-keys/{key['id']}", json={"status": "disabled"})
    response = await world.gateway.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {world.user.api_key}"},
        json={"model": OPENAI_MODEL, "messages": HELLO},
    )
    assert response.status_code == 503


async def test_price_change_reaches_another_instance_through_redis(
    tmp_path: Path, clock: ManualClock, database_url: str, redis_prefix: str
) -> None:
    settings = make_settings(tmp_path, database_url, redis_url=REDIS_URL, redis_key_prefix=redis_prefix)
    async with MockUpstream() as mock, serve(settings, clock) as first, serve(settings, clock) as second:
        world = await build_world(first[0], first[1], mock)
        other = World(second[0], second[1], mock, world.admin, world.user)
        before = await _cost(other)
        await _set_output_price(world, 50)
        for _ in range(100):  # the other instance must see it within a second
            if await _cost(other) != before:
                break
            await asyncio.sleep(0.01)
        assert await _cost(other) - before == Money(DEFAULT_REPLY_TOKENS * 25_000)


async def test_instances_without_redis_still_serve(
    app_factory: AppFactory, embedded_database_url: str
) -> None:
    gateway = await app_factory(embedded_database_url)
    await gateway.state.invalidation.publish("models")
    assert (await gateway.client.get("/healthz")).status_code == 200


async def _chat_status(world: World) -> int:
    response = await world.gateway.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {world.user.api_key}"},
        json={"model": OPENAI_MODEL, "messages": HELLO},
    )
    return response.status_code


async def test_rebinding_a_cooling_factory_key_to_a_corrected_proxy_lifts_its_cool_down(world: World) -> None:
    keys = (await world.admin_call("GET", "/api/admin/factory-keys")).json()
    key_id = next(k["id"] for k in keys if k["provider"] == "openai")
    async with ForwardingProxy(credentials=("scott", "tiger"), tinyproxy=True) as proxy:
        wrong = await world.admin_call(
            "POST", "/api/admin/proxies", json={"name": "wrong", "url": proxy.url_with("scott:wrong")}
        )
        await world.admin_call(
            "PATCH", f"/api/admin/factory-keys/{key_id}", json={"proxyId": wrong.json()["id"]}
        )
        assert await _chat_status(world) == 503  # the proxy refused: the only key cools down
        await world.state.upstream.flush()
        assert await _chat_status(world) == 503

        right = await world.admin_call(
            "POST", "/api/admin/proxies", json={"name": "right", "url": proxy.url_with("scott:tiger")}
        )
        await world.admin_call(
            "PATCH", f"/api/admin/factory-keys/{key_id}", json={"proxyId": right.json()["id"]}
        )

        assert await _chat_status(world) == 200
        assert proxy.forwarded == 1
    listed = (await world.admin_call("GET", "/api/admin/factory-keys")).json()
    assert next(k for k in listed if k["id"] == key_id)["status"] == "healthy"
