"""`trollllm rotate-secret`: every stored secret re-encrypted under a new server secret, in one transaction.

What is encrypted under the server secret: users' own provider keys (BYOK), factory keys, the copies of
users' gateway keys and Friend Keys (for reveal), proxy URLs with their credentials (plaintext ones are
sealed on the way), users' alert webhook signing secrets, and the gateway's own `server_keys`. Gateway keys
and Friend Keys are looked up by an HMAC digest, so the digest key cannot change with the secret: the
rotation carries it forward, encrypted under the new secret (`server_keys.key-digest`), and `load_keybox`
picks it up at start-up. Dashboard sessions (JWTs, signed with a key derived from the secret) end: everyone
signs in again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.accounts.apikeys import api_key_context
from trollllm.accounts.tables import ApiKey
from trollllm.alerts.tables import AlertSettings
from trollllm.alerts.webhooks import webhook_secret_context
from trollllm.byok.service import key_context
from trollllm.byok.tables import ProviderKey
from trollllm.crypto import KeyBox
from trollllm.db import transaction
from trollllm.errors import ConfigurationError
from trollllm.friendkeys.service import friend_key_context
from trollllm.friendkeys.tables import FriendKey
from trollllm.keyrotation.tables import DIGEST_KEY, ServerKey
from trollllm.upstream.keyring import factory_key_context
from trollllm.upstream.proxy_secrets import proxy_url_of, seal
from trollllm.upstream.tables import FactoryKey, Proxy

logger = logging.getLogger("trollllm.keyrotation")


class RotationRefused(Exception):
    """A stored secret does not decrypt with the current secret: nothing was changed."""


@dataclass(frozen=True, slots=True)
class RotationReport:
    """How many stored secrets of each kind were re-encrypted."""

    provider_keys: int
    factory_keys: int
    api_keys: int
    proxies: int
    webhook_secrets: int = 0
    friend_keys: int = 0


def server_key_context(purpose: str) -> str:
    """The associated data of a server key."""
    return f"server_key:{purpose}"


async def load_keybox(sessions: async_sessionmaker[AsyncSession], secret: bytes) -> KeyBox:
    """The `KeyBox` of `secret`, with the digest key a past rotation carried forward (if any).

    A carried digest key that does not decrypt means the secret is not this database's: a startup error,
    rather than every gateway key failing as invalid.
    """
    keybox = KeyBox(secret)
    try:
        async with sessions() as session:
            blob = await session.scalar(
                select(ServerKey.key_encrypted).where(ServerKey.purpose == DIGEST_KEY)
            )
    except DBAPIError:  # a schema not migrated yet: nothing was ever rotated on it
        return keybox
    if blob is None:
        return keybox
    try:
        digest_key = bytes.fromhex(keybox.decrypt(bytes(blob), server_key_context(DIGEST_KEY)))
    except ValueError as exc:
        raise ConfigurationError(
            "TROLLLLM_SECRET is not the secret this database's keys are encrypted under; use the secret "
            "set by the last `trollllm rotate-secret`"
        ) from exc
    return KeyBox(secret, digest_key=digest_key)


def _reencrypt(old: KeyBox, new: KeyBox, blob: bytes, context: str, what: str) -> bytes:
    try:
        plaintext = old.decrypt(bytes(blob), context)
    except ValueError as exc:
        raise RotationRefused(
            f"{what} does not decrypt with the current secret; nothing was changed"
        ) from exc
    return new.encrypt(plaintext, context)


async def rotate_secret(
    sessions: async_sessionmaker[AsyncSession], old: KeyBox, new_secret: bytes
) -> RotationReport:
    """Re-encrypt every stored secret from `old` to `new_secret` in one transaction (all or nothing).

    Raises `RotationRefused` (and changes nothing) when a stored secret does not decrypt with `old`.
    """
    new = KeyBox(new_secret, digest_key=old.digest_key)
    async with transaction(sessions) as session:
        provider_keys = list(await session.scalars(select(ProviderKey).with_for_update()))
        for own in provider_keys:
            context = key_context(own.user_id, own.provider)
            own.key_encrypted = _reencrypt(
                old, new, own.key_encrypted, context, f"provider key {own.id} ({own.provider})"
            )
        factory_keys = list(await session.scalars(select(FactoryKey).with_for_update()))
        for factory in factory_keys:
            factory.key_encrypted = _reencrypt(
                old, new, factory.key_encrypted, factory_key_context(factory.id), f"factory key {factory.id}"
            )
        api_keys = list(await session.scalars(select(ApiKey).with_for_update()))
        for api_key in api_keys:
            api_key.key_encrypted = _reencrypt(
                old, new, api_key.key_encrypted, api_key_context(api_key.user_id), f"API key {api_key.id}"
            )
        friend_keys = list(
            await session.scalars(
                select(FriendKey).where(FriendKey.key_encrypted.is_not(None)).with_for_update()
            )
        )
        for friend in friend_keys:
            assert friend.key_encrypted is not None
            friend.key_encrypted = _reencrypt(
                old, new, friend.key_encrypted, friend_key_context(friend.owner_id), f"Friend Key {friend.id}"
            )
        proxies = list(await session.scalars(select(Proxy).with_for_update()))
        for proxy in proxies:
            try:
                url = proxy_url_of(proxy.id, proxy.url, proxy.url_encrypted, old)
            except ValueError as exc:
                raise RotationRefused(f"proxy {proxy.id} does not decrypt with the current secret") from exc
            seal(proxy, url, new)
        webhooks = list(
            await session.scalars(
                select(AlertSettings)
                .where(AlertSettings.webhook_secret_encrypted.is_not(None))
                .with_for_update()
            )
        )
        for alert in webhooks:
            assert alert.webhook_secret_encrypted is not None
            alert.webhook_secret_encrypted = _reencrypt(
                old, new, alert.webhook_secret_encrypted, webhook_secret_context(alert.user_id),
                f"the webhook secret of user {alert.user_id}",
            )  # fmt: skip
        carried = new.encrypt(old.digest_key.hex(), server_key_context(DIGEST_KEY))
        row = await session.get(ServerKey, DIGEST_KEY, with_for_update=True)
        if row is None:
            session.add(ServerKey(purpose=DIGEST_KEY, key_encrypted=carried))
        else:
            row.key_encrypted = carried
    report = RotationReport(
        len(provider_keys), len(factory_keys), len(api_keys), len(proxies), len(webhooks), len(friend_keys)
    )
    logger.warning("server secret rotated: every stored secret re-encrypted", extra={"report": str(report)})
    return report
