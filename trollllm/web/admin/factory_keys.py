"""`/factory-keys`: the operator's upstream keys with status, last error, cool-down, requests and spend;
add one, enable or disable one, test one (one real call, its result and latency shown in its row); edit and
delete are in `factory_key_edit.py`. A key the provider refused (401/403) is flagged: it was disabled for it.

The key itself is never shown (masked, last 4), and a refused form does not echo it back.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from trollllm.accounts.tables import User
from trollllm.db import transaction
from trollllm.errors import GatewayError
from trollllm.providers.known import provider_names
from trollllm.state import get_state
from trollllm.upstream import service
from trollllm.upstream.checks import UpstreamCheck, plan_key_check
from trollllm.upstream.schemas import FactoryKeyPatch, FactoryKeyView, NewFactoryKey
from trollllm.web.admin.access import admin_form, admin_page, admin_view, done, field_errors, service_error
from trollllm.web.admin.upstream_test import test_button

router = APIRouter(include_in_schema=False)

HINTS = {
    "name": "1 to 100 characters",
    "provider": "openai or anthropic",
    "baseUrl": "An http(s) URL of the provider's API, e.g. https://api.openai.com/v1",
    "apiKey": "8 to 512 printable characters, no spaces",
    "proxyId": "Choose a proxy from the list, or none",
}
# Said by the Delete dialog of this page and by the confirmation page of `factory_key_edit.py`.
DELETE_WARNING = "{name} leaves the rotation at once and its stored key is erased; request logs keep its id."
# What the pool writes when the provider refuses the key itself (upstream/pool.py).
_REFUSED_BY_PROVIDER = re.compile(r"^upstream answered (401|403)\b")


def refused_by_provider(key: FactoryKeyView) -> str | None:
    """The status code (`"401"`, `"403"`) when the provider's refusal disabled this key, else None."""
    match = _REFUSED_BY_PROVIDER.match(key.lastError or "")
    return match.group(1) if key.status == "disabled" and match else None


async def _render(
    request: Request,
    admin: User,
    status_code: int = 200,
    new: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    row_errors: dict[int, str] | None = None,
    checks: dict[int, UpstreamCheck] | None = None,
) -> Response:
    async with get_state(request).sessions() as session:
        rows = await service.list_factory_keys(session)
        proxies = await service.list_proxies(session)
        providers = await provider_names(session)  # rows of `providers`: adding one is data, not code
    proxy_names = {proxy.id: proxy.name for proxy in proxies}
    return admin_view(
        request,
        "admin/factory_keys.html",
        admin,
        "factory-keys",
        status_code,
        keys=[
            (view, refused_by_provider(view), proxy_names.get(row.proxy_id or 0), row.spend_nanos)
            for row, view in ((row, FactoryKeyView.of(row)) for row in rows)
        ],
        provider_options=[(provider, provider) for provider in providers],
        proxy_options=[("", "No proxy")] + [(str(proxy.id), proxy.name) for proxy in proxies],
        new=new or {"provider": "openai"},
        errors=errors or {},
        row_errors=row_errors or {},
        checks=checks or {},
        delete_warning=DELETE_WARNING,
    )


@router.get("/factory-keys")
async def factory_keys_page(request: Request) -> Response:
    """Every factory key and the add form."""
    admin = await admin_page(request)
    if isinstance(admin, Response):
        return admin
    return await _render(request, admin)


@router.post("/factory-keys")
async def add_factory_key(request: Request) -> Response:
    """Store an upstream key (encrypted); refusals next to their field."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    admin, form = posted
    typed = {name: form.get(name, "").strip() for name in ("name", "provider", "baseUrl", "proxyId")}
    proxy = typed["proxyId"]
    errors: dict[str, str] = {}
    proxy_id: int | str | None = int(proxy) if proxy.isdigit() and len(proxy) < 10 else (proxy or None)
    body = {**typed, "apiKey": form.get("apiKey", ""), "proxyId": proxy_id}
    try:
        new_key = NewFactoryKey.model_validate(body)
    except ValidationError as invalid:
        errors = field_errors(invalid, HINTS, form)
    if errors:
        return await _render(request, admin, 400, typed, errors)
    state = get_state(request)
    try:
        async with transaction(state.sessions) as session:
            await service.create_factory_key(session, state, admin.username, new_key)
    except GatewayError as error:
        return await _render(request, admin, error.status_code, typed, service_error(error))
    await state.invalidation.publish("upstream")
    return done("/factory-keys", f"Added factory key {new_key.name}")


@router.post("/factory-keys/{key_id}/status")
async def set_status(request: Request, key_id: str) -> Response:
    """Enable (`status=healthy`: clears the last error and cool-down) or disable a key."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    admin, form = posted
    status = form.get("status", "")
    if not key_id.isdigit() or len(key_id) > 9 or status not in ("healthy", "disabled"):
        return await _render(request, admin, 400, row_errors={})
    state = get_state(request)
    try:
        async with transaction(state.sessions) as session:
            row = await service.update_factory_key(
                session, state, admin.username, int(key_id), FactoryKeyPatch(status=status)
            )
            name = row.name
    except GatewayError as error:
        return await _render(request, admin, error.status_code, row_errors={int(key_id): error.message})
    await state.invalidation.publish("upstream")
    return done("/factory-keys", f"{'Enabled' if status == 'healthy' else 'Disabled'} factory key {name}")


@router.post("/factory-keys/{key_id}/test")
async def test_key(request: Request, key_id: str) -> Response:
    """One real call with the key (`GET {baseUrl}/models`, through its proxy); the page again with the
    result and latency in the key's row."""
    return await test_button(request, key_id, "factory key", plan_key_check, _render)
