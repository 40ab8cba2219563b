"""`/keys`, `/factory-keys`, `/proxies` and `/admin/audit` over HTTP: masked keys, confirmations, inline
refusals, the provider-refused flag, and every write in the audit log."""

from __future__ import annotations

from datetime import timedelta

from admin_page_helpers import post_form, signed_in
from conftest import AppHarness
from helpers import make_admin, register_user
from proxy_world import OPENAI_MODEL, World
from sqlalchemy import update

from trollllm.db import transaction
from trollllm.upstream.tables import FactoryKey

NEW_KEY = {"name": "openai-main", "provider": "openai", "baseUrl": "https://api.example.com/v1",
           "apiKey": "sk-upstream-secret-1234", "proxyId": ""}  # fmt: skip


async def test_keys_are_masked_and_a_revocation_is_confirmed_first(gateway: AppHarness) -> None:
    await make_admin(gateway)
    alice = await register_user(gateway, "alice")
    async with signed_in(gateway, "root") as client:
        listed = await client.get("/keys", params={"search": "ali"})
        confirm = await client.get("/keys/alice/revoke")
        revoked = await post_form(client, "/keys/alice/revoke", "/keys/alice/revoke")
        after = await client.get("/keys")
    masked = f"sk-trollllm-****...****{alice.api_key[-4:]}"
    assert masked in listed.text and alice.api_key not in listed.text
    assert "Revoke alice&#39;s API key?" in confirm.text and masked in confirm.text
    assert revoked.status_code == 303
    assert f"Revoked alice&#39;s key {masked}" in after.text
    assert (
        await gateway.client.get("/v1/models", headers={"Authorization": f"Bearer {alice.api_key}"})
    ).status_code == 401


async def test_a_factory_key_is_added_masked_and_disabled_then_enabled(gateway: AppHarness) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        added = await post_form(client, "/factory-keys", "/factory-keys", **NEW_KEY)
        page = await client.get("/factory-keys")
        await post_form(client, "/factory-keys", "/factory-keys/1/status", status="disabled")
        disabled = await client.get("/factory-keys")
        await post_form(client, "/factory-keys", "/factory-keys/1/status", status="healthy")
        enabled = await client.get("/factory-keys")
    assert added.status_code == 303
    assert "Added factory key openai-main" in page.text and "****1234" in page.text
    assert "sk-upstream-secret-1234" not in page.text
    assert "Disabled factory key openai-main" in disabled.text and ">disabled<" in disabled.text
    assert "Enabled factory key openai-main" in enabled.text and ">healthy<" in enabled.text


async def test_a_factory_key_form_names_each_bad_field_and_never_echoes_the_key(gateway: AppHarness) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        missing = await post_form(
            client, "/factory-keys", "/factory-keys", name="", provider="openai", baseUrl="", apiKey=""
        )
        bad_url = await post_form(
            client, "/factory-keys", "/factory-keys", **(NEW_KEY | {"baseUrl": "ftp://example.com"})
        )
    assert missing.status_code == 400
    for field in ("name", "baseUrl", "apiKey"):
        assert f'id="{field}-error"' in missing.text, field
    assert bad_url.status_code == 400 and 'id="baseUrl-error"' in bad_url.text
    assert "scheme" in bad_url.text and "sk-upstream-secret-1234" not in bad_url.text


async def test_a_key_the_provider_refused_is_flagged(world: World) -> None:
    await world.admin_call(
        "POST",
        "/api/admin/factory-keys",
        json={
            "name": "openai-dead",
            "provider": "openai",
            "baseUrl": world.mock.url,
            "apiKey": "fk-openai-dead",
        },
    )
    world.mock.set_key_status("fk-openai-dead", 401)
    async with world.openai() as client:
        for _ in range(4):  # the rotation reaches the dead key; the next key answers instead
            await client.chat.completions.create(
                model=OPENAI_MODEL, messages=[{"role": "user", "content": "hi"}]
            )
    await world.state.upstream.flush()
    async with signed_in(world.gateway, world.admin.username) as admin:
        page = await admin.get("/factory-keys")
    html = page.text.replace("<wbr>", "")  # names may break after / - . : (render.breakable)
    row = html.split("openai-dead")[1].split("</tr>")[0]
    assert "Refused by the provider (401)" in row and ">disabled<" in row
    assert "Refused by the provider" not in html.split("openai-dead")[0]


async def test_a_proxy_is_added_with_its_password_masked_and_deleted_after_a_confirmation(
    gateway: AppHarness,
) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        bad = await post_form(client, "/proxies", "/proxies", name="eu", url="http://10.0.0.5")
        added = await post_form(
            client, "/proxies", "/proxies", name="eu", url="http://bob:hunter2@10.0.0.5:3128"
        )
        page = await client.get("/proxies")
        confirm = await client.get("/proxies/1/delete")
        deleted = await post_form(client, "/proxies/1/delete", "/proxies/1/delete")
        after = await client.get("/proxies")
    assert bad.status_code == 400 and 'id="url-error"' in bad.text and "port" in bad.text
    assert added.status_code == 303
    assert "bob:****@10.0.0.5:3128" in page.text and "hunter2" not in page.text
    assert "Delete proxy eu?" in confirm.text
    assert deleted.status_code == 303 and "Deleted the proxy" in after.text and "No proxies" in after.text


async def test_a_proxy_in_use_is_not_deleted_and_the_page_says_why(gateway: AppHarness) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        await post_form(client, "/proxies", "/proxies", name="eu", url="http://10.0.0.5:3128")
        await post_form(client, "/factory-keys", "/factory-keys", **(NEW_KEY | {"proxyId": "1"}))
        refused = await post_form(client, "/proxies/1/delete", "/proxies/1/delete")
    assert refused.status_code == 409
    assert "unbind or delete them first" in refused.text


async def test_the_audit_log_lists_page_writes_with_their_changes(gateway: AppHarness) -> None:
    await make_admin(gateway)
    await register_user(gateway, "alice")
    async with signed_in(gateway, "root") as client:
        await post_form(client, "/users/alice", "/users/alice/plan", plan="dev", confirm="yes")
        await post_form(client, "/proxies", "/proxies", name="eu", url="http://10.0.0.5:3128")
        page = await client.get("/admin/audit")
        only_users = await client.get("/admin/audit", params={"action": "user.update"})
    html, only_users_html = page.text.replace("<wbr>", ""), only_users.text.replace("<wbr>", "")
    assert "user:alice" in html and "proxy.create" in html
    assert "free → dev" in html
    assert "proxy.create" not in only_users_html and "user:alice" in only_users_html


async def test_a_cooling_key_shows_until_when(gateway: AppHarness) -> None:
    await make_admin(gateway)
    until = gateway.state.clock.now() + timedelta(minutes=5)
    async with signed_in(gateway, "root") as client:
        await post_form(client, "/factory-keys", "/factory-keys", **NEW_KEY)
        async with transaction(gateway.state.sessions) as session:
            await session.execute(
                update(FactoryKey).values(
                    status="cooling_down", cooldown_until=until, last_error="upstream answered 429"
                )
            )
        page = await client.get("/factory-keys")
    assert ">cooling down<" in page.text
    assert f'cool-down until <time datetime="{until.isoformat()}">' in page.text
    assert "upstream answered 429" in page.text and ">Enable<" in page.text
