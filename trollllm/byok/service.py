"""Users' own provider keys: saved encrypted (bound to their user and provider), listed by last 4."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.byok.tables import UNVERIFIED, ProviderKey
from trollllm.byok.validation import check_provider_key
from trollllm.db import transaction
from trollllm.errors import NotFound
from trollllm.providers.tables import Provider
from trollllm.state import AppState


def key_context(user_id: int, provider: str) -> str:
    """The associated data of a user's key: a blob copied to another user or provider does not decrypt."""
    return f"byok:{user_id}:{provider}"


async def known_provider(session: AsyncSession, name: str) -> Provider:
    """The provider row named `name`; 404 naming it otherwise."""
    provider = await session.get(Provider, name)
    if provider is None:
        raise NotFound(f"No provider {name!r}; see GET /api/user/provider-keys for the list")
    return provider


async def providers(session: AsyncSession) -> list[Provider]:
    """Every provider a user may bring a key for, by name."""
    return list((await session.scalars(select(Provider).order_by(Provider.name))).all())


async def saved_keys(session: AsyncSession, user_id: int) -> list[ProviderKey]:
    """The user's saved keys, by provider."""
    rows = await session.scalars(
        select(ProviderKey).where(ProviderKey.user_id == user_id).order_by(ProviderKey.provider)
    )
    return list(rows.all())


async def own_key_providers(state: AppState, user_id: int) -> set[str]:
    """The providers the user saved a key for."""
    async with state.sessions() as session:
        rows = await session.scalars(select(ProviderKey.provider).where(ProviderKey.user_id == user_id))
        return set(rows.all())


async def save_key(state: AppState, user_id: int, provider: str, api_key: str) -> ProviderKey:
    """Store (or replace) the user's key for `provider`, encrypted with a fresh nonce."""
    blob = state.keybox.encrypt(api_key, key_context(user_id, provider))
    for _ in range(2):  # a concurrent first save of the same provider: the second try updates its row
        try:
            async with transaction(state.sessions) as session:
                await known_provider(session, provider)
                row = await session.scalar(
                    select(ProviderKey)
                    .where(ProviderKey.user_id == user_id, ProviderKey.provider == provider)
                    .with_for_update()
                )
                if row is None:
                    row = ProviderKey(user_id=user_id, provider=provider)
                    session.add(row)
                row.key_encrypted = blob
                row.last4 = api_key[-4:]
                row.added_at = state.clock.now()
                row.status, row.status_at = UNVERIFIED, None  # a new key: nothing known of it yet
                await session.flush()
                return row
        except IntegrityError:
            continue
    raise RuntimeError("the provider key could not be saved")  # pragma: no cover (two lost races)


async def check_saved_key(state: AppState, row: ProviderKey, api_key: str) -> ProviderKey:
    """Ask the provider about a key just saved (`check_provider_key`) and record the answer on `row`,
    unless the key was replaced meanwhile; off when `TROLLLLM_PROVIDER_KEY_CHECK_TIMEOUT_S` is 0."""
    timeout_s = state.settings.provider_key_check_timeout_s
    if timeout_s <= 0:
        return row
    async with state.sessions() as session:
        provider = await known_provider(session, row.provider)
    status = await check_provider_key(provider.base_url, provider.wire_format, api_key, timeout_s)
    now = state.clock.now()
    async with transaction(state.sessions) as session:
        await session.execute(
            update(ProviderKey)
            .where(ProviderKey.id == row.id, ProviderKey.key_encrypted == row.key_encrypted)
            .values(status=status, status_at=now)
        )
    row.status, row.status_at = status, now
    return row


async def delete_key(state: AppState, user_id: int, provider: str) -> None:
    """Forget the user's key for `provider` (404 if there is none)."""
    async with transaction(state.sessions) as session:
        deleted = await session.execute(
            delete(ProviderKey)
            .where(ProviderKey.user_id == user_id, ProviderKey.provider == provider)
            .returning(ProviderKey.id)
        )
        if deleted.first() is None:
            raise NotFound(f"No saved key for {provider!r}")
