"""Admin endpoints for the upstream side: factory keys (`/api/admin/factory-keys…`) and proxies
(`/api/admin/proxies…`).

Mounted by `trollllm.admin.router` behind the admin check. Every write is one transaction with its audit
entry; no response carries a factory key's plaintext or a proxy's password.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from trollllm.accounts.sessions import CurrentAdmin
from trollllm.db import transaction
from trollllm.state import get_state
from trollllm.upstream import service
from trollllm.upstream.checks import UpstreamCheck, plan_key_check, plan_proxy_check, run_check
from trollllm.upstream.schemas import (
    INT32_MAX,
    FactoryKeyPatch,
    FactoryKeyView,
    NewFactoryKey,
    NewProxy,
    ProxyView,
)

router = APIRouter(tags=["admin: upstream"])

# Row ids are 32-bit integers; anything outside is a 422 here rather than a database overflow.
RowId = Annotated[int, Path(ge=1, le=INT32_MAX)]


@router.get("/factory-keys", response_model=list[FactoryKeyView])
async def list_factory_keys(request: Request) -> list[FactoryKeyView]:
    """Every factory key with its status and counters; the key only as `last4` and `maskedKey`."""
    async with get_state(request).sessions() as session:
        rows = await service.list_factory_keys(session)
    return [FactoryKeyView.of(row) for row in rows]


@router.post("/factory-keys", status_code=201, response_model=FactoryKeyView)
async def create_factory_key(body: NewFactoryKey, admin: CurrentAdmin, request: Request) -> FactoryKeyView:
    """Store an upstream key (encrypted at rest) for any provider row (`GET /api/admin/providers`; 422
    naming `provider` otherwise); answers its masked view."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        row = await service.create_factory_key(session, state, admin.username, body)
    await state.invalidation.publish("upstream")
    return FactoryKeyView.of(row)


@router.patch("/factory-keys/{key_id}", response_model=FactoryKeyView)
async def update_factory_key(
    key_id: RowId, body: FactoryKeyPatch, admin: CurrentAdmin, request: Request
) -> FactoryKeyView:
    """Rename, move to another provider row, re-point, replace the key, bind or unbind (`proxyId: null`)
    a proxy, re-enable or disable; 422 naming `provider` for a provider that is no row."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        row = await service.update_factory_key(session, state, admin.username, key_id, body)
    await state.invalidation.publish("upstream")
    return FactoryKeyView.of(row)


@router.delete("/factory-keys/{key_id}", status_code=204)
async def delete_factory_key(key_id: RowId, admin: CurrentAdmin, request: Request) -> Response:
    """Delete a factory key (404 if unknown)."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        await service.delete_factory_key(session, state, admin.username, key_id)
    await state.invalidation.publish("upstream")
    return Response(status_code=204)


@router.post("/factory-keys/{key_id}/test", response_model=UpstreamCheck)
async def try_factory_key(key_id: RowId, request: Request) -> UpstreamCheck:
    """One real call with the key, through its proxy: `GET {baseUrl}/models` (free at OpenAI and
    Anthropic, and it checks the key). Answers what happened and the latency; changes nothing (404 if
    unknown). `ok: false` with the reason for a refused key, a dead URL or a proxy that refuses."""
    state = get_state(request)
    async with state.sessions() as session:
        plan = await plan_key_check(session, state, key_id)
    return await run_check(state, plan)


@router.get("/proxies", response_model=list[ProxyView])
async def list_proxies(request: Request) -> list[ProxyView]:
    """Every proxy (password masked) with the factory keys bound to it."""
    async with get_state(request).sessions() as session:
        return await service.list_proxies(session)


@router.post("/proxies", status_code=201, response_model=ProxyView)
async def create_proxy(body: NewProxy, admin: CurrentAdmin, request: Request) -> ProxyView:
    """Add a proxy (409 if the name is taken)."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        return await service.create_proxy(session, state, admin.username, body)
    await state.invalidation.publish("upstream")


@router.post("/proxies/{proxy_id}/test", response_model=UpstreamCheck)
async def try_proxy(proxy_id: RowId, request: Request) -> UpstreamCheck:
    """One real call through the proxy: `GET …/models` with its first factory key, or with no key to the
    first provider when none is bound. `ok`: the proxy passed the request (whatever the provider said of
    the key); changes nothing (404 if unknown)."""
    state = get_state(request)
    async with state.sessions() as session:
        plan = await plan_proxy_check(session, state, proxy_id)
    return await run_check(state, plan)


@router.delete("/proxies/{proxy_id}", status_code=204)
async def delete_proxy(proxy_id: RowId, admin: CurrentAdmin, request: Request) -> Response:
    """Delete a proxy (404 if unknown, 409 while factory keys use it)."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        await service.delete_proxy(session, state, admin.username, proxy_id)
    await state.invalidation.publish("upstream")
    return Response(status_code=204)
