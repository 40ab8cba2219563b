"""`trollllm rotate-secret` (issue 15): every stored secret (own provider keys, factory keys, API key and
Friend Key copies, proxy URLs with credentials) re-encrypted under a new server secret, and the gateway
works on after it with the new secret: gateway keys, Friend Keys, own keys, factory keys behind a proxy, key
reveal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from byok_helpers import HELLO, OWN_OPENAI_KEY, point_provider_at, save_own_key
from conftest import TEST_SECRET, make_settings
from forwarding_proxy import ForwardingProxy
from helpers import PASSWORD, register_user
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World, serve
from sqlalchemy import select
from test_friendkeys_proxy import friend_key

from trollllm.accounts.apikeys import api_key_context
from trollllm.accounts.tables import ApiKey
from trollllm.app import create_app
from trollllm.byok.service import key_context
from trollllm.byok.tables import ProviderKey
from trollllm.cli import main
from trollllm.clock import ManualClock
from trollllm.crypto import KeyBox
from trollllm.errors import ConfigurationError
from trollllm.friendkeys.service import friend_key_context
from trollllm.friendkeys.tables import FriendKey
from trollllm.keyrotation.service import RotationRefused, rotate_secret
from trollllm.upstream.keyring import factory_key_context
from trollllm.upstream.proxy_secrets import proxy_url_context
from trollllm.upstream.tables import FactoryKey, Proxy

NEW_SECRET = "rotated-secret-" + "y" * 40


async def _blobs(world: World) -> list[tuple[bytes, str]]:
    """Every stored encrypted secret with its associated data."""
    async with world.state.sessions() as session:
        blobs = [
            (row.key_encrypted, key_context(row.user_id, row.provider))
            for row in await session.scalars(select(ProviderKey))
        ]
        blobs += [
            (row.key_encrypted, factory_key_context(row.id))
            for row in await session.scalars(select(FactoryKey))
        ]
        blobs += [
            (row.key_encrypted, api_key_context(row.user_id)) for row in await session.scalars(select(ApiKey))
        ]
        blobs += [
            (row.key_encrypted, friend_key_context(row.owner_id))
            for row in await session.scalars(select(FriendKey))
            if row.key_encrypted is not None
        ]
        for row in await session.scalars(select(Proxy)):
            assert row.url_encrypted is not None
            blobs.append((row.url_encrypted, proxy_url_context(row.id)))
    return blobs


async def _secret_world(world: World, proxy: ForwardingProxy) -> None:
    """A proxy with credentials bound to the Anthropic factory key, an own key, a Friend Key."""
    created = await world.admin_call(
        "POST", "/api/admin/proxies", json={"name": "p1", "url": proxy.url_with("scott:tiger")}
    )
    keys = (await world.admin_call("GET", "/api/admin/factory-keys")).json()
    anthropic_key = next(key for key in keys if key["provider"] == "anthropic")
    await world.admin_call(
        "PATCH", f"/api/admin/factory-keys/{anthropic_key['id']}", json={"proxyId": created.json()["id"]}
    )
    await point_provider_at(world, "openai", world.mock.url)


async def test_rotate_secret_re_encrypts_every_stored_secret_and_the_gateway_works_after(
    any_world: World, tmp_path: Path, clock: ManualClock, database_url: str
) -> None:
    async with ForwardingProxy(credentials=("scott", "tiger")) as proxy:
        await _secret_world(any_world, proxy)
        bob = await register_user(any_world.gateway, "bob")
        await any_world.admin_call("PATCH", "/api/admin/users/bob", json={"plan": "dev"})
        await save_own_key(any_world, bob, "openai", OWN_OPENAI_KEY)
        friend = await friend_key(
            any_world, any_world.user, [{"modelId": OPENAI_MODEL, "limitUsd": 5, "enabled": True}]
        )
        old = any_world.state.keybox
        before = [old.decrypt(blob, context) for blob, context in await _blobs(any_world)]

        report = await rotate_secret(any_world.state.sessions, old, NEW_SECRET.encode())

        assert (report.provider_keys, report.factory_keys, report.proxies, report.friend_keys) == (1, 2, 1, 1)
        new = KeyBox(NEW_SECRET.encode())
        after = await _blobs(any_world)
        assert all(new.is_current(blob) for blob, _ in after)
        assert [new.decrypt(blob, context) for blob, context in after] == before
        for blob, context in after:
            with pytest.raises(ValueError):
                KeyBox(TEST_SECRET.encode()).decrypt(blob, context)

        settings = make_settings(tmp_path, database_url, secret=NEW_SECRET)
        async with serve(settings, clock) as (gateway, base_url):
            rotated = World(gateway, base_url, any_world.mock, any_world.admin, any_world.user)
            async with rotated.openai() as client:  # a factory key, under the new secret
                platform = await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
            assert platform.choices[0].message.content
            assert any_world.mock.last_request.headers["authorization"] == "Bearer fk-openai-one"
            async with rotated.anthropic() as client:  # through the proxy, its credentials decrypted
                await client.messages.create(model=ANTHROPIC_MODEL, max_tokens=20, messages=HELLO)
            assert proxy.forwarded == 1
            async with rotated.openai(bob.api_key) as client:  # bob's own key
                await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
            assert any_world.mock.last_request.headers["authorization"] == f"Bearer {OWN_OPENAI_KEY}"
            async with rotated.openai(friend) as client:  # a Friend Key: only its digest is stored
                await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
            login = await gateway.client.post(
                "/api/auth/login", json={"username": "alice", "password": PASSWORD}
            )
            token = login.json()["token"]
            revealed = await gateway.client.get(
                "/api/user/api-key", headers={"Authorization": f"Bearer {token}"}
            )
            assert revealed.json()["apiKey"] == any_world.user.api_key


async def test_after_a_rotation_the_old_secret_does_not_start_the_gateway(
    any_world: World, tmp_path: Path, clock: ManualClock, database_url: str
) -> None:
    await rotate_secret(any_world.state.sessions, any_world.state.keybox, NEW_SECRET.encode())
    app = create_app(make_settings(tmp_path, database_url), clock=clock)
    with pytest.raises(ConfigurationError, match="last `trollllm rotate-secret`"):
        async with app.router.lifespan_context(app):
            pass


async def test_a_secret_that_does_not_decrypt_refuses_the_rotation_and_changes_nothing(world: World) -> None:
    await save_own_key(world, world.user, "openai", OWN_OPENAI_KEY)
    before = await _blobs(world)
    wrong = KeyBox(b"w" * 40)
    with pytest.raises(RotationRefused, match="does not decrypt"):
        await rotate_secret(world.state.sessions, wrong, NEW_SECRET.encode())
    assert await _blobs(world) == before


async def test_a_proxy_url_is_stored_with_its_password_encrypted_only(world: World) -> None:
    await world.admin_call(
        "POST", "/api/admin/proxies", json={"name": "p1", "url": "http://scott:tiger99@127.0.0.1:3128"}
    )
    async with world.state.sessions() as session:
        (row,) = (await session.scalars(select(Proxy))).all()
    assert row.url == "http://scott:****@127.0.0.1:3128"
    assert row.url_encrypted is not None and b"tiger99" not in row.url_encrypted
    assert (
        world.state.keybox.decrypt(row.url_encrypted, proxy_url_context(row.id))
        == "http://scott:tiger99@127.0.0.1:3128"
    )


async def test_a_proxy_url_stored_in_plaintext_is_sealed_at_start_up(
    world: World, tmp_path: Path, clock: ManualClock, embedded_database_url: str
) -> None:
    async with world.state.sessions() as session, session.begin():
        session.add(Proxy(name="legacy", url="http://scott:tiger99@127.0.0.1:3128", created_at=clock.now()))
    app = create_app(make_settings(tmp_path, embedded_database_url), clock=clock)
    async with app.router.lifespan_context(app):
        pass
    async with world.state.sessions() as session:
        (row,) = (await session.scalars(select(Proxy))).all()
    assert row.url == "http://scott:****@127.0.0.1:3128" and row.url_encrypted is not None
    assert world.state.keybox.decrypt(row.url_encrypted, proxy_url_context(row.id)).endswith(
        "tiger99@127.0.0.1:3128"
    )


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("TROLLLLM_") and k != "DATABASE_URL"
    }
    environment |= {"TROLLLLM_DATA_DIR": str(tmp_path), "TROLLLLM_LOG_LEVEL": "warning"} | env
    return subprocess.run(
        [sys.executable, "-m", "trollllm", *args],
        env=environment,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def _create_admin_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """`create-admin root` through `main()` in this process, with `_cli`'s environment (no process start)."""
    for name in [k for k in os.environ if k.startswith("TROLLLLM_") or k == "DATABASE_URL"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TROLLLLM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TROLLLLM_LOG_LEVEL", "warning")
    return main(["create-admin", "root", "--password", PASSWORD])


def test_cli_rotate_secret_replaces_the_generated_secret_and_the_gateway_starts_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _create_admin_in_process(tmp_path, monkeypatch) == 0
    old = (tmp_path / "secret.key").read_text()
    rotated = _cli(tmp_path, "rotate-secret")
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted under the new secret" in rotated.stdout
    new = (tmp_path / "secret.key").read_text()
    assert new != old and len(new) == 64 and not (tmp_path / "secret.key.new").exists()
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    assert _create_admin_in_process(tmp_path, monkeypatch) == 0  # starts on the new secret


def test_cli_rotate_secret_with_a_configured_secret_needs_the_new_one(tmp_path: Path) -> None:
    refused = _cli(tmp_path, "rotate-secret", TROLLLLM_SECRET=TEST_SECRET)
    assert refused.returncode == 2 and "TROLLLLM_NEW_SECRET" in refused.stderr
    short = _cli(tmp_path, "rotate-secret", TROLLLLM_SECRET=TEST_SECRET, TROLLLLM_NEW_SECRET="short")
    assert short.returncode == 2 and "at least 32" in short.stderr
