"""The check every write naming a provider goes through: the name must be a row of `providers`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.errors import ValidationFailed
from trollllm.providers.tables import Provider


async def provider_names(session: AsyncSession) -> list[str]:
    """Every provider's name, sorted."""
    return list(await session.scalars(select(Provider.name).order_by(Provider.name)))


async def require_provider(session: AsyncSession, name: str, field: str = "provider") -> Provider:
    """The provider row named `name`; otherwise a 422 naming `field` and listing the known providers.

    Holds a share lock on PostgreSQL so the row cannot change under the write that names it.
    """
    row = await session.get(Provider, name, with_for_update={"read": True})
    if row is None:
        known = await provider_names(session)
        raise ValidationFailed(
            f"{field}: unknown provider {name!r}; known providers: {', '.join(known)} "
            "(an admin adds one with POST /api/admin/providers)",
            field=field,
            knownProviders=known,
        )
    return row
