"""Users' own provider keys, stored (issue 15, part 1; SPEC §3, §7): AES-256-GCM bound to the user and the
provider, a key id per blob for secret rotation, never returned whole."""

from __future__ import annotations

import os

import pytest
from conftest import AppHarness
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from helpers import Account, register_user
from sqlalchemy import select

from trollllm.byok.service import key_context
from trollllm.byok.tables import Provider, ProviderKey
from trollllm.crypto import KeyBox, derive_key, key_id_of

GROQ_KEY = "gsk_" + "Zq7" * 12 + "wxyz"
OPENAI_KEY = "sk-proj-" + "Ab9" * 12 + "1234"


async def _put(
    gateway: AppHarness, user: Account, provider: str, api_key: str
) -> tuple[int, dict[str, object]]:
    response = await gateway.client.put(
        f"/api/user/provider-keys/{provider}", headers=user.auth, json={"apiKey": api_key}
    )
    return response.status_code, response.json() if response.content else {}


async def _rows(gateway: AppHarness) -> list[ProviderKey]:
    async with gateway.state.sessions() as session:
        return list((await session.scalars(select(ProviderKey).order_by(ProviderKey.id))).all())


async def test_openai_anthropic_groq_and_gemini_are_configured_providers(any_gateway: AppHarness) -> None:
    async with any_gateway.state.sessions() as session:
        rows = {row.name: row.wire_format for row in (await session.scalars(select(Provider))).all()}
    assert rows == {"openai": "openai", "anthropic": "anthropic", "groq": "openai", "gemini": "openai"}


async def test_a_saved_key_is_listed_by_its_last_four_only(any_gateway: AppHarness) -> None:
    alice = await register_user(any_gateway, "alice")
    status, saved = await _put(any_gateway, alice, "groq", GROQ_KEY)
    assert status == 200 and saved["last4"] == "wxyz" and GROQ_KEY not in str(saved)
    listed = await any_gateway.client.get("/api/user/provider-keys", headers=alice.auth)
    assert [(key["provider"], key["last4"]) for key in listed.json()] == [("groq", "wxyz")]
    assert set(listed.json()[0]) == {"provider", "last4", "addedAt", "status", "statusAt"}
    assert GROQ_KEY not in listed.text and GROQ_KEY[4:-4] not in listed.text


async def test_saving_again_replaces_the_key(gateway: AppHarness) -> None:
    alice = await register_user(gateway, "alice")
    await _put(gateway, alice, "openai", OPENAI_KEY)
    await _put(gateway, alice, "openai", OPENAI_KEY[:-4] + "9999")
    (row,) = await _rows(gateway)
    assert row.last4 == "9999"
    assert gateway.state.keybox.decrypt(row.key_encrypted, key_context(row.user_id, "openai")).endswith(
        "9999"
    )


async def test_an_unknown_provider_is_404(gateway: AppHarness) -> None:
    alice = await register_user(gateway, "alice")
    status, body = await _put(gateway, alice, "mistral", OPENAI_KEY)
    assert status == 404 and "mistral" in str(body)
    assert await _rows(gateway) == []


@pytest.mark.parametrize("api_key", ["short", "has a space in it", "x" * 513, ""])
async def test_a_malformed_key_is_refused_naming_api_key(gateway: AppHarness, api_key: str) -> None:
    alice = await register_user(gateway, "alice")
    status, body = await _put(gateway, alice, "openai", api_key)
    assert status == 422 and "apiKey" in str(body)
    assert await _rows(gateway) == []


async def test_a_deleted_key_is_gone_and_deleting_again_is_404(any_gateway: AppHarness) -> None:
    alice = await register_user(any_gateway, "alice")
    await _put(any_gateway, alice, "anthropic", "sk-ant-api03-" + "k" * 40)
    first = await any_gateway.client.delete("/api/user/provider-keys/anthropic", headers=alice.auth)
    again = await any_gateway.client.delete("/api/user/provider-keys/anthropic", headers=alice.auth)
    assert (first.status_code, again.status_code) == (204, 404)
    assert await _rows(any_gateway) == []


async def test_each_user_sees_only_their_own_keys(gateway: AppHarness) -> None:
    alice, bob = await register_user(gateway, "alice"), await register_user(gateway, "bob")
    await _put(gateway, alice, "groq", GROQ_KEY)
    listed = await gateway.client.get("/api/user/provider-keys", headers=bob.auth)
    assert listed.json() == []
    assert (await gateway.client.delete("/api/user/provider-keys/groq", headers=bob.auth)).status_code == 404


async def test_the_same_key_saved_twice_is_two_different_ciphertexts(gateway: AppHarness) -> None:
    alice = await register_user(gateway, "alice")
    await _put(gateway, alice, "openai", OPENAI_KEY)
    (first,) = await _rows(gateway)
    blob = first.key_encrypted
    await _put(gateway, alice, "openai", OPENAI_KEY)
    (second,) = await _rows(gateway)
    assert second.key_encrypted != blob
    assert OPENAI_KEY.encode() not in second.key_encrypted


# --- the blob: nonce, associated data, key id ------------------------------------------------------------

SECRET = b"s" * 32
CONTEXT = key_context(7, "openai")


def _flip(blob: bytes, index: int) -> bytes:
    return blob[:index] + bytes([blob[index] ^ 1]) + blob[index + 1 :]


@pytest.mark.parametrize(("part", "index"), [("ciphertext", -1), ("nonce", 9), ("key id", 1)])
def test_tampering_with_any_part_of_the_blob_fails(part: str, index: int) -> None:
    box = KeyBox(SECRET)
    blob = box.encrypt(OPENAI_KEY, CONTEXT)
    with pytest.raises(ValueError, match="cannot be decrypted"):
        box.decrypt(_flip(blob, index), CONTEXT)


def test_a_blob_moved_to_another_user_or_provider_does_not_decrypt() -> None:
    box = KeyBox(SECRET)
    blob = box.encrypt(OPENAI_KEY, CONTEXT)
    for other in (key_context(8, "openai"), key_context(7, "groq")):
        with pytest.raises(ValueError):
            box.decrypt(blob, other)
    assert box.decrypt(blob, CONTEXT) == OPENAI_KEY


def test_a_blob_names_the_secret_that_encrypted_it() -> None:
    old, new = KeyBox(SECRET), KeyBox(b"n" * 32, previous=(SECRET,))
    blob = old.encrypt(OPENAI_KEY, CONTEXT)
    assert blob[1:9] == key_id_of(SECRET) != key_id_of(b"n" * 32)
    assert new.decrypt(blob, CONTEXT) == OPENAI_KEY  # a previous secret still opens its blobs
    assert not new.is_current(blob) and new.is_current(new.encrypt(OPENAI_KEY, CONTEXT))
    with pytest.raises(ValueError):
        KeyBox(b"n" * 32).decrypt(blob, CONTEXT)  # without it, the blob is refused, never garbage


def test_a_blob_written_before_key_ids_still_decrypts() -> None:
    nonce = os.urandom(12)
    legacy = nonce + AESGCM(derive_key(SECRET, "trollllm/aes-gcm/v1")).encrypt(
        nonce, OPENAI_KEY.encode(), CONTEXT.encode()
    )
    assert KeyBox(SECRET).decrypt(legacy, CONTEXT) == OPENAI_KEY
