"""Provider rows for the admin API: listed, added and replaced, each write audited.

Writes run in the caller's transaction and only flush; the route owns the commit (and, after it, the
invalidation of the model catalog and the upstream pool, which both carry a provider's wire format).
A provider is never deleted here: model rows, factory keys and users' own keys name it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.audit.service import record_audit
from trollllm.errors import Conflict, NotFound
from trollllm.providers.schemas import NewProvider, ProviderFields, ProviderView
from trollllm.providers.tables import Provider
from trollllm.state import AppState
from trollllm.upstream.service import validate_base_url


def _target(name: str) -> str:
    return f"provider:{name}"


def _snapshot(row: Provider) -> dict[str, Any]:
    return ProviderView.of(row).model_dump(mode="json")


async def list_providers(session: AsyncSession) -> list[Provider]:
    """Every provider row, by name."""
    return list(await session.scalars(select(Provider).order_by(Provider.name)))


async def create_provider(session: AsyncSession, state: AppState, actor: str, body: NewProvider) -> Provider:
    """Add a provider row; 409 (field `name`) if the name exists, 400 (field `baseUrl`) for a bad URL."""
    base_url = validate_base_url(body.baseUrl)
    taken = f"Provider {body.name!r} already exists"
    if await session.get(Provider, body.name) is not None:
        raise Conflict(taken, field="name")
    row = Provider(
        name=body.name,
        display_name=body.displayName or body.name,
        wire_format=body.wireFormat,
        base_url=base_url,
        responses_api=bool(body.responsesApi),
        created_at=state.clock.now(),
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name won the race
        raise Conflict(taken, field="name") from exc
    await record_audit(
        session, state, actor=actor, action="provider.create", target=_target(row.name), after=_snapshot(row)
    )
    return row


async def replace_provider(
    session: AsyncSession, state: AppState, actor: str, name: str, body: ProviderFields
) -> Provider:
    """Replace a provider's display name, wire format and API root (its name stays); 404 if unknown.

    Factory keys keep their own `baseUrl`; users' own keys of this provider go to the new API root.
    """
    base_url = validate_base_url(body.baseUrl)
    row = await session.get(Provider, name, with_for_update=True)
    if row is None:
        raise NotFound(f"No provider {name!r}")
    before = _snapshot(row)
    row.display_name = body.displayName or row.name
    row.wire_format = body.wireFormat
    row.base_url = base_url
    if body.responsesApi is not None:
        row.responses_api = body.responsesApi
    await session.flush()
    await record_audit(
        session,
        state,
        actor=actor,
        action="provider.update",
        target=_target(name),
        before=before,
        after=_snapshot(row),
    )
    return row
