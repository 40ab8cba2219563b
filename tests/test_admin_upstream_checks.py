"""The Test buttons of factory keys and proxies (issue 28): one real `GET …/models` through the key and its
proxy, against the mock provider, a dead port and a forwarding proxy; the result and latency in the API
answer and in the row of the page; nothing written."""

from __future__ import annotations

import socket

from admin_page_helpers import post_form, signed_in
from forwarding_proxy import ForwardingProxy
from proxy_world import World
from sqlalchemy import update

from trollllm.db import transaction
from trollllm.providers.tables import Provider
from trollllm.upstream.tables import FactoryKey

OPENAI_KEY_ID = 1  # build_world adds openai-1 (id 1) then anthropic-1 (id 2), both at the mock


def _dead_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def _add_key(world: World, name: str, base_url: str, proxy_id: int | None = None) -> int:
    body = {"name": name, "provider": "openai", "baseUrl": base_url, "apiKey": f"fk-{name}-key"}
    added = await world.admin_call("POST", "/api/admin/factory-keys", json=body | {"proxyId": proxy_id})
    return int(added.json()["id"])


async def _test_key(world: World, key_id: int) -> dict[str, object]:
    answer = await world.admin_call("POST", f"/api/admin/factory-keys/{key_id}/test")
    return dict(answer.json())


async def test_a_key_at_the_provider_passes_with_the_models_listed_and_a_latency(world: World) -> None:
    before = len(world.mock.requests)

    result = await _test_key(world, OPENAI_KEY_ID)

    assert result["ok"] is True and result["status"] == 200
    assert str(result["message"]).startswith("200 OK: ") and "models listed" in str(result["message"])
    assert isinstance(result["latencyMs"], int) and result["latencyMs"] >= 0
    assert result["url"] == f"{world.mock.url}/v1/models" and result["via"] is None
    call = world.mock.requests[before]
    assert (call.method, call.path) == ("GET", "/v1/models")
    assert call.headers["authorization"] == "Bearer fk-openai-one"


async def test_an_anthropic_key_is_tested_with_its_own_auth_headers(world: World) -> None:
    before = len(world.mock.requests)

    result = await _test_key(world, 2)

    assert result["ok"] is True
    call = world.mock.requests[before]
    assert call.headers["x-api-key"] == "fk-anthropic-one" and call.headers["anthropic-version"]
    assert "authorization" not in call.headers


async def test_a_key_at_a_dead_port_fails_saying_it_cannot_connect(world: World) -> None:
    dead = _dead_url()
    key_id = await _add_key(world, "dead", dead)

    result = await _test_key(world, key_id)

    assert result["ok"] is False and result["status"] is None
    assert str(result["message"]).startswith(f"cannot connect to {dead.removeprefix('http://')}")


async def test_a_key_the_provider_refuses_fails_with_its_status_and_stays_as_it_was(world: World) -> None:
    world.mock.set_key_status("fk-openai-one", 401)

    result = await _test_key(world, OPENAI_KEY_ID)

    assert result["ok"] is False and result["status"] == 401
    assert str(result["message"]).startswith("the provider refused the key (401)")
    keys = (await world.admin_call("GET", "/api/admin/factory-keys")).json()
    assert keys[0]["status"] == "healthy" and keys[0]["lastError"] is None, "a test changes nothing"


async def test_a_key_is_tested_through_its_proxy(world: World) -> None:
    async with ForwardingProxy() as proxy:
        made = await world.admin_call("POST", "/api/admin/proxies", json={"name": "eu", "url": proxy.url})
        key_id = await _add_key(world, "proxied", world.mock.url, made.json()["id"])

        result = await _test_key(world, key_id)

    assert result["ok"] is True and result["via"] == "eu"
    assert proxy.requests == [f"GET {world.mock.url}/v1/models"]


async def test_a_proxy_that_refuses_its_credentials_fails_its_test(world: World) -> None:
    async with ForwardingProxy(credentials=("bob", "right")) as proxy:
        url = proxy.url_with("bob:wrong")
        made = await world.admin_call("POST", "/api/admin/proxies", json={"name": "eu", "url": url})
        proxy_id = made.json()["id"]
        await _add_key(world, "proxied", world.mock.url, proxy_id)

        result = (await world.admin_call("POST", f"/api/admin/proxies/{proxy_id}/test")).json()

    assert result["ok"] is False and result["status"] == 407
    assert "proxy refused credentials" in result["message"] and "wrong" not in result["message"]
    assert proxy.forwarded == 0


async def test_a_proxy_passes_its_test_even_when_the_provider_refuses_the_key(world: World) -> None:
    world.mock.set_key_status("fk-proxied-key", 401)
    async with ForwardingProxy() as proxy:
        made = await world.admin_call("POST", "/api/admin/proxies", json={"name": "eu", "url": proxy.url})
        proxy_id = made.json()["id"]
        await _add_key(world, "proxied", world.mock.url, proxy_id)

        result = (await world.admin_call("POST", f"/api/admin/proxies/{proxy_id}/test")).json()

    assert result["ok"] is True and result["status"] == 401 and result["via"] == "eu"
    assert result["message"].startswith("the proxy passed the request; the provider refused the key (401)")


async def test_a_proxy_without_keys_is_tested_against_the_first_provider_without_a_key(world: World) -> None:
    async with transaction(world.state.sessions) as session:
        await session.execute(update(Provider).values(base_url=world.mock.url))
    before = len(world.mock.requests)
    async with ForwardingProxy() as proxy:
        made = await world.admin_call("POST", "/api/admin/proxies", json={"name": "eu", "url": proxy.url})

        result = (await world.admin_call("POST", f"/api/admin/proxies/{made.json()['id']}/test")).json()

    assert result["ok"] is True and result["status"] == 401
    assert "(no key sent)" in result["message"]
    call = world.mock.requests[before]
    assert "authorization" not in call.headers and "x-api-key" not in call.headers


async def test_a_dead_proxy_fails_its_test(world: World) -> None:
    dead = _dead_url()
    made = await world.admin_call("POST", "/api/admin/proxies", json={"name": "gone", "url": dead})
    proxy_id = made.json()["id"]
    await _add_key(world, "proxied", world.mock.url, proxy_id)

    result = (await world.admin_call("POST", f"/api/admin/proxies/{proxy_id}/test")).json()

    assert result["ok"] is False and result["status"] is None
    assert "gone" in result["message"]


async def test_testing_an_unknown_key_or_proxy_is_404(world: World) -> None:
    for path in ("/api/admin/factory-keys/99/test", "/api/admin/proxies/99/test"):
        response = await world.gateway.client.post(path, headers=world.admin.auth)
        assert response.status_code == 404, path


async def test_the_test_button_of_an_unknown_key_or_proxy_draws_its_page_with_a_404(world: World) -> None:
    async with signed_in(world.gateway, world.admin.username) as client:
        for page, noun in (("/factory-keys", "factory key"), ("/proxies", "proxy")):
            for row_id in ("99", "9" * 5000):  # past the 32-bit ids, and past what `int()` reads at all
                answer = await post_form(client, page, f"{page}/{row_id}/test")
                assert answer.status_code == 404, (page, row_id[:12])
                assert f"No {noun} with id {row_id[:12]}" in answer.text


async def test_the_page_shows_a_passing_and_a_failing_test_in_their_rows(world: World) -> None:
    dead_id = await _add_key(world, "dead", _dead_url())
    async with signed_in(world.gateway, world.admin.username) as client:
        passed = await post_form(client, "/factory-keys", f"/factory-keys/{OPENAI_KEY_ID}/test")
        failed = await post_form(client, "/factory-keys", f"/factory-keys/{dead_id}/test")
    assert passed.status_code == 200
    assert f'id="check-{OPENAI_KEY_ID}">Test passed · ' in passed.text and "models listed" in passed.text
    assert f'id="check-{dead_id}">Test failed' in failed.text
    assert "cannot connect to 127.0.0.1:" in failed.text
    async with world.state.sessions() as session:
        key = await session.get(FactoryKey, dead_id)
    assert key is not None and key.status == "healthy", "a failed test does not take the key out of rotation"


async def test_the_proxies_page_shows_the_test_result(world: World) -> None:
    async with ForwardingProxy() as proxy:
        made = await world.admin_call("POST", "/api/admin/proxies", json={"name": "eu", "url": proxy.url})
        proxy_id = made.json()["id"]
        await _add_key(world, "proxied", world.mock.url, proxy_id)
        async with signed_in(world.gateway, world.admin.username) as client:
            page = await post_form(client, "/proxies", f"/proxies/{proxy_id}/test")
    assert page.status_code == 200
    assert f'id="check-{proxy_id}">Test passed · ' in page.text
    assert "the proxy passed the request" in page.text
