"""`/factory-keys/{id}/edit` and `/factory-keys/{id}/delete`: change a factory key's name, provider, base
URL, proxy or key (left blank, the stored key stays), or delete it.

Both are the admin API's service calls (`PATCH` / `DELETE /api/admin/factory-keys/{id}`), audited. The
Delete button on `/factory-keys` asks in a dialog (`static/admin.js`); without JavaScript it opens the
confirmation page below instead.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from trollllm.accounts.tables import User
from trollllm.db import transaction
from trollllm.errors import GatewayError
from trollllm.providers.known import provider_names
from trollllm.state import get_state
from trollllm.upstream import service
from trollllm.upstream.schemas import FactoryKeyPatch
from trollllm.upstream.tables import FactoryKey
from trollllm.web.admin.access import admin_form, admin_page, admin_view, done, field_errors, service_error
from trollllm.web.admin.factory_keys import DELETE_WARNING, HINTS
from trollllm.web.admin.upstream_test import row_id_of

router = APIRouter(include_in_schema=False)

KEEP_KEY_HINT = "Leave blank to keep the stored key (ending in {last4})"


async def _key(request: Request, key_id: str) -> FactoryKey | None:
    number = row_id_of(key_id)
    if number is None:
        return None
    async with get_state(request).sessions() as session:
        return await session.get(FactoryKey, number)


async def _edit_view(
    request: Request,
    admin: User,
    key: FactoryKey,
    status_code: int = 200,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    async with get_state(request).sessions() as session:
        proxies = await service.list_proxies(session)
        providers = await provider_names(session)
    shown = typed or {
        "name": key.name,
        "provider": key.provider,
        "baseUrl": key.base_url,
        "proxyId": str(key.proxy_id or ""),
    }
    return admin_view(
        request,
        "admin/factory_key_edit.html",
        admin,
        "factory-keys",
        status_code,
        key=key,
        values=shown,
        errors=errors or {},
        key_hint=KEEP_KEY_HINT.format(last4=key.last4),
        provider_options=[(provider, provider) for provider in providers],
        proxy_options=[("", "No proxy")] + [(str(proxy.id), proxy.name) for proxy in proxies],
    )


def _not_found(request: Request, admin: User) -> Response:
    return admin_view(request, "not_found.html", admin, "factory-keys", 404)


@router.get("/factory-keys/{key_id}/edit")
async def edit_page(request: Request, key_id: str) -> Response:
    """The key's fields in a form (never the key itself)."""
    admin = await admin_page(request)
    if isinstance(admin, Response):
        return admin
    key = await _key(request, key_id)
    return _not_found(request, admin) if key is None else await _edit_view(request, admin, key)


@router.post("/factory-keys/{key_id}/edit")
async def save(request: Request, key_id: str) -> Response:
    """Save the changes; refusals next to their field, the typed values kept (never the key)."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    admin, form = posted
    key = await _key(request, key_id)
    if key is None:
        return _not_found(request, admin)
    typed = {name: form.get(name, "").strip() for name in ("name", "provider", "baseUrl", "proxyId")}
    proxy = typed["proxyId"]
    body: dict[str, object] = {
        **{name: typed[name] for name in ("name", "provider", "baseUrl")},
        "proxyId": int(proxy) if proxy.isdigit() and len(proxy) < 10 else (proxy or None),
    }
    if form.get("apiKey", ""):
        body["apiKey"] = form["apiKey"]
    try:
        patch = FactoryKeyPatch.model_validate(body)
    except ValidationError as invalid:
        return await _edit_view(request, admin, key, 400, typed, field_errors(invalid, HINTS, form))
    state = get_state(request)
    try:
        async with transaction(state.sessions) as session:
            row = await service.update_factory_key(session, state, admin.username, key.id, patch)
            name = row.name
    except GatewayError as error:
        return await _edit_view(request, admin, key, error.status_code, typed, service_error(error))
    await state.invalidation.publish("upstream")
    replaced = " (key replaced)" if "apiKey" in body else ""
    return done("/factory-keys", f"Saved factory key {name}{replaced}")


@router.get("/factory-keys/{key_id}/delete")
async def confirm_delete(request: Request, key_id: str) -> Response:
    """The confirmation before a deletion (the page's dialog asks the same with JavaScript)."""
    admin = await admin_page(request)
    if isinstance(admin, Response):
        return admin
    key = await _key(request, key_id)
    if key is None:
        return _not_found(request, admin)
    return admin_view(
        request,
        "admin/confirm.html",
        admin,
        "factory-keys",
        heading=f"Delete factory key {key.name}?",
        lines=[DELETE_WARNING.format(name=key.name)],
        action=f"/factory-keys/{key.id}/delete",
        button="Delete factory key",
        back="/factory-keys",
        error="",
    )


@router.post("/factory-keys/{key_id}/delete")
async def delete(request: Request, key_id: str) -> Response:
    """Delete the key (audited), then back to `/factory-keys`."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    admin, _form = posted
    key = await _key(request, key_id)
    if key is None:
        return _not_found(request, admin)
    state = get_state(request)
    try:
        async with transaction(state.sessions) as session:
            await service.delete_factory_key(session, state, admin.username, key.id)
    except GatewayError:  # deleted meanwhile
        return _not_found(request, admin)
    await state.invalidation.publish("upstream")
    return done("/factory-keys", f"Deleted factory key {key.name}")
