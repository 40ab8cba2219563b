"""Editing and deleting a factory key from `/factory-keys` (issue 28): the form shows the key's fields but
never the key, a blank key keeps the stored one, refusals sit next to their field, deletion asks first."""

from __future__ import annotations

from admin_page_helpers import post_form, signed_in
from proxy_world import OPENAI_MODEL, World

EDIT = "/factory-keys/1/edit"


async def test_the_edit_form_shows_the_fields_but_never_the_key(world: World) -> None:
    async with signed_in(world.gateway, world.admin.username) as client:
        listing = await client.get("/factory-keys")
        page = await client.get(EDIT)
    assert 'href="/factory-keys/1/edit" aria-label="Edit openai-1"' in listing.text
    assert page.status_code == 200 and "Edit openai-1" in page.text
    assert f'value="{world.mock.url}"' in page.text and 'value="openai-1"' in page.text
    assert "Leave blank to keep the stored key (ending in -one)" in page.text
    assert "fk-openai-one" not in page.text


async def test_a_saved_edit_renames_and_repoints_and_a_blank_key_keeps_the_stored_one(world: World) -> None:
    async with signed_in(world.gateway, world.admin.username) as client:
        saved = await post_form(
            client, EDIT, EDIT, name="openai-main", provider="openai", baseUrl=world.mock.url + "/v1",
            apiKey="", proxyId="",
        )  # fmt: skip
        after = await client.get("/factory-keys")
    assert saved.status_code == 303
    assert "Saved factory key openai-main" in after.text and "(key replaced)" not in after.text
    key = (await world.admin_call("GET", "/api/admin/factory-keys")).json()[0]
    assert (
        key["name"] == "openai-main" and key["baseUrl"] == world.mock.url + "/v1" and key["last4"] == "-one"
    )
    async with world.openai() as sdk:  # the stored key still works at the new URL
        await sdk.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert world.mock.requests[-1].headers["authorization"] == "Bearer fk-openai-one"


async def test_a_new_key_replaces_the_stored_one(world: World) -> None:
    async with signed_in(world.gateway, world.admin.username) as client:
        await post_form(
            client, EDIT, EDIT, name="openai-1", provider="openai", baseUrl=world.mock.url,
            apiKey="fk-openai-two", proxyId="",
        )  # fmt: skip
        after = await client.get("/factory-keys")
    assert "Saved factory key openai-1 (key replaced)" in after.text and "****-two" in after.text
    assert "fk-openai-two" not in after.text


async def test_a_bad_edit_is_refused_next_to_its_field_and_changes_nothing(world: World) -> None:
    async with signed_in(world.gateway, world.admin.username) as client:
        refused = await post_form(
            client,
            EDIT,
            EDIT,
            name="",
            provider="openai",
            baseUrl="ftp://nowhere",
            apiKey="short",
            proxyId="",
        )
    assert refused.status_code == 400
    assert 'id="name-error">Required' in refused.text
    assert 'id="apiKey-error">8 to 512 printable characters, no spaces' in refused.text
    assert "short" not in refused.text.split('id="apiKey"')[1].split(">")[0], "the key is not echoed"
    key = (await world.admin_call("GET", "/api/admin/factory-keys")).json()[0]
    assert key["name"] == "openai-1"


async def test_a_bad_base_url_is_refused_by_its_field(world: World) -> None:
    async with signed_in(world.gateway, world.admin.username) as client:
        refused = await post_form(
            client, EDIT, EDIT, name="x", provider="openai", baseUrl="ftp://nowhere", apiKey="", proxyId=""
        )
    assert refused.status_code == 400 and 'id="baseUrl-error">baseUrl must be a URL' in refused.text


async def test_deleting_a_key_is_confirmed_then_removes_it(world: World) -> None:
    async with signed_in(world.gateway, world.admin.username) as client:
        listing = await client.get("/factory-keys")
        confirm = await client.get("/factory-keys/1/delete")
        deleted = await post_form(client, "/factory-keys", "/factory-keys/1/delete")
        after = await client.get("/factory-keys")
        again = await post_form(client, "/factory-keys", "/factory-keys/1/delete")
    assert 'data-confirm="Delete factory key openai-1?"' in listing.text
    assert "Delete factory key openai-1?" in confirm.text and "its stored key is erased" in confirm.text
    assert deleted.status_code == 303 and "Deleted factory key openai-1" in after.text
    assert [key["name"] for key in (await world.admin_call("GET", "/api/admin/factory-keys")).json()] == [
        "anthropic-1"
    ]
    assert again.status_code == 404


async def test_every_destructive_button_asks_first(world: World) -> None:
    await world.admin_call("POST", "/api/admin/proxies", json={"name": "eu", "url": "http://10.0.0.5:3128"})
    async with signed_in(world.gateway, world.admin.username) as client:
        pages = {path: (await client.get(path)).text for path in ("/factory-keys", "/proxies", "/keys")}
        user = (await client.get("/users/alice")).text
    assert 'data-confirm="Disable factory key openai-1?"' in pages["/factory-keys"]
    assert 'data-confirm="Delete proxy eu?"' in pages["/proxies"]
    assert 'data-confirm="Revoke alice&#39;s API key?"' in pages["/keys"]
    assert 'data-confirm="Deactivate alice?"' in user
    for html in (*pages.values(), user):
        assert '<dialog id="confirm-dialog"' in html and '<script src="/static/admin.js" defer>' in html
