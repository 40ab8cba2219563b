"""Admin endpoints for provider rows: `GET/POST /api/admin/providers`, `PUT /api/admin/providers/{name}`.

Mounted by `trollllm.admin.router` behind the admin check. A write invalidates the model catalog and the
upstream pool on every instance: both hold each provider's wire format.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from trollllm.accounts.sessions import CurrentAdmin
from trollllm.db import transaction
from trollllm.providers import service
from trollllm.providers.schemas import PROVIDER_NAME_PATTERN, NewProvider, ProviderFields, ProviderView
from trollllm.state import AppState, get_state

router = APIRouter(tags=["admin: providers"])

NamePath = Annotated[str, Path(pattern=PROVIDER_NAME_PATTERN, description="e.g. `deepseek`")]


async def _invalidate(state: AppState) -> None:
    await state.invalidation.publish("models")
    await state.invalidation.publish("upstream")


@router.get("/providers", response_model=list[ProviderView])
async def list_providers(request: Request) -> list[ProviderView]:
    """Every provider row by name: what a model row, a factory key or a user's own key may name."""
    async with get_state(request).sessions() as session:
        rows = await service.list_providers(session)
    return [ProviderView.of(row) for row in rows]


@router.post("/providers", status_code=201, response_model=ProviderView)
async def create_provider(body: NewProvider, admin: CurrentAdmin, request: Request) -> ProviderView:
    """Add a provider (409 if the name exists; 400 naming `baseUrl` for a bad URL): from then on models,
    factory keys and users' own keys may name it."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        row = await service.create_provider(session, state, admin.username, body)
    await _invalidate(state)
    return ProviderView.of(row)


@router.put("/providers/{name}", response_model=ProviderView)
async def replace_provider(
    name: NamePath, body: ProviderFields, admin: CurrentAdmin, request: Request
) -> ProviderView:
    """Replace a provider's display name, wire format and API root (404 if unknown)."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        row = await service.replace_provider(session, state, admin.username, name, body)
    await _invalidate(state)
    return ProviderView.of(row)
