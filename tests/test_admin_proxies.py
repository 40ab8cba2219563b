"""Admin proxies (SPEC §3, §7): `GET/POST /api/admin/proxies`, `DELETE /api/admin/proxies/{id}`."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import AppHarness
from helpers import Account, make_admin
from sqlalchemy import select

from trollllm.audit.tables import AuditEntry
from trollllm.upstream.service import mask_proxy_url

PROXY_PASSWORD = "pr0xy-pa55word-Zq9"
PROXY: dict[str, Any] = {"name": "egress-eu", "url": f"http://scraper:{PROXY_PASSWORD}@10.0.0.7:3128"}


@pytest.fixture
async def admin(gateway: AppHarness) -> Account:
    return await make_admin(gateway)


async def create(gateway: AppHarness, admin: Account, **changes: Any) -> dict[str, Any]:
    response = await gateway.client.post("/api/admin/proxies", headers=admin.auth, json=PROXY | changes)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def list_proxies(gateway: AppHarness, admin: Account) -> list[dict[str, Any]]:
    response = await gateway.client.get("/api/admin/proxies", headers=admin.auth)
    assert response.status_code == 200
    body: list[dict[str, Any]] = response.json()
    return body


async def bind_key(gateway: AppHarness, admin: Account, proxy_id: int, name: str = "bound key") -> int:
    response = await gateway.client.post(
        "/api/admin/factory-keys",
        headers=admin.auth,
        json={
            "name": name,
            "provider": "openai",
            "baseUrl": "https://api.openai.com/v1",
            "apiKey": "sk-some-upstream-key",
            "proxyId": proxy_id,
        },
    )
    assert response.status_code == 201, response.text
    key_id: int = response.json()["id"]
    return key_id


async def test_created_proxy_is_listed_with_its_password_masked(gateway: AppHarness, admin: Account) -> None:
    created = await create(gateway, admin)
    assert created["url"] == "http://scraper:****@10.0.0.7:3128"
    assert created["factoryKeys"] == []
    assert await list_proxies(gateway, admin) == [created]


async def test_url_without_credentials_is_shown_as_given(gateway: AppHarness, admin: Account) -> None:
    assert (await create(gateway, admin, url="https://proxy.example.com:8443"))["url"] == (
        "https://proxy.example.com:8443"
    )


@pytest.mark.parametrize("url", ["socks5://10.0.0.8:1080", "socks5h://user:pw@proxy.local:1080"])
async def test_socks5_proxies_are_accepted(gateway: AppHarness, admin: Account, url: str) -> None:
    await create(gateway, admin, url=url)


def test_mask_keeps_the_user_and_hides_only_the_password() -> None:
    assert mask_proxy_url("socks5h://u:p%40ss@h:1080") == "socks5h://u:****@h:1080"
    assert mask_proxy_url("http://only-user@h:3128") == "http://only-user@h:3128"


async def test_listing_shows_the_factory_keys_bound_to_each_proxy(
    gateway: AppHarness, admin: Account
) -> None:
    used = (await create(gateway, admin))["id"]
    unused = (await create(gateway, admin, name="spare"))["id"]
    first = await bind_key(gateway, admin, used, "k1")
    second = await bind_key(gateway, admin, used, "k2")
    proxies = {proxy["id"]: proxy for proxy in await list_proxies(gateway, admin)}
    assert proxies[used]["factoryKeys"] == [{"id": first, "name": "k1"}, {"id": second, "name": "k2"}]
    assert proxies[unused]["factoryKeys"] == []


async def test_duplicate_name_is_409_naming_name(gateway: AppHarness, admin: Account) -> None:
    await create(gateway, admin)
    response = await gateway.client.post("/api/admin/proxies", headers=admin.auth, json=PROXY)
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "name"
    assert len(await list_proxies(gateway, admin)) == 1


async def test_delete_removes_an_unused_proxy(gateway: AppHarness, admin: Account) -> None:
    proxy_id = (await create(gateway, admin))["id"]
    response = await gateway.client.delete(f"/api/admin/proxies/{proxy_id}", headers=admin.auth)
    assert response.status_code == 204
    assert await list_proxies(gateway, admin) == []


async def test_delete_of_a_proxy_in_use_is_409_listing_its_keys(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    proxy_id = (await create(any_gateway, admin))["id"]
    key_id = await bind_key(any_gateway, admin, proxy_id)
    response = await any_gateway.client.delete(f"/api/admin/proxies/{proxy_id}", headers=admin.auth)
    assert response.status_code == 409
    assert response.json()["error"]["factoryKeyIds"] == [key_id]
    assert len(await list_proxies(any_gateway, admin)) == 1


async def test_proxy_can_be_deleted_once_its_keys_are_unbound(gateway: AppHarness, admin: Account) -> None:
    proxy_id = (await create(gateway, admin))["id"]
    key_id = await bind_key(gateway, admin, proxy_id)
    await gateway.client.patch(
        f"/api/admin/factory-keys/{key_id}", headers=admin.auth, json={"proxyId": None}
    )
    response = await gateway.client.delete(f"/api/admin/proxies/{proxy_id}", headers=admin.auth)
    assert response.status_code == 204


async def test_delete_of_an_unknown_proxy_is_404(gateway: AppHarness, admin: Account) -> None:
    assert (await gateway.client.delete("/api/admin/proxies/999", headers=admin.auth)).status_code == 404


async def test_writes_are_audited_without_the_password(gateway: AppHarness, admin: Account) -> None:
    proxy_id = (await create(gateway, admin))["id"]
    await gateway.client.delete(f"/api/admin/proxies/{proxy_id}", headers=admin.auth)
    async with gateway.state.sessions() as session:
        entries = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [entry.action for entry in entries] == ["proxy.create", "proxy.delete"]
    for entry in entries:
        assert PROXY_PASSWORD not in f"{entry.before_json} {entry.after_json}"


async def test_html_in_the_name_is_stored_as_given(gateway: AppHarness, admin: Account) -> None:
    name = "</script><b>eu</b>"
    assert (await create(gateway, admin, name=name))["name"] == name
    assert (await list_proxies(gateway, admin))[0]["name"] == name


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 10_000}, "name"),
        ({"name": ["a"]}, "name"),
        ({"url": None}, "url"),
        ({"url": 3128}, "url"),
        ({"url": "http://h:1/" + "a" * 10_000}, "url"),
    ],
)
async def test_malformed_proxy_is_422_naming_the_field_and_writes_nothing(
    gateway: AppHarness, admin: Account, changes: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in (PROXY | changes).items() if v is not None}
    response = await gateway.client.post("/api/admin/proxies", headers=admin.auth, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert await list_proxies(gateway, admin) == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://10.0.0.7:21",
        "javascript:alert(1)",
        "socks4://10.0.0.7:1080",
        "http://10.0.0.7",
        "http://:3128",
        "http://",
        "10.0.0.7:3128",
        "http://10.0.0.7:99999",
        "http://10.0.0.7:3128/path",
        "http://10.0.0.7:3128?x=1",
        "http://10.0.0.7:3128#frag",
        "http://10.0.0.7 :3128",
    ],
)
async def test_invalid_url_is_400_naming_url_and_writes_nothing(
    gateway: AppHarness, admin: Account, url: str
) -> None:
    response = await gateway.client.post("/api/admin/proxies", headers=admin.auth, json=PROXY | {"url": url})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "url"
    assert await list_proxies(gateway, admin) == []
