"""`/proxies`: outbound proxies (password masked) with their keys and last error; add, test (one real call
through the proxy, its result and latency shown in its row), delete (confirmed)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from trollllm.accounts.tables import User
from trollllm.db import transaction
from trollllm.errors import GatewayError
from trollllm.state import get_state
from trollllm.upstream import service
from trollllm.upstream.checks import UpstreamCheck, plan_proxy_check
from trollllm.upstream.schemas import NewProxy
from trollllm.web.admin.access import admin_form, admin_page, admin_view, done, field_errors, service_error
from trollllm.web.admin.upstream_test import row_id_of, test_button

router = APIRouter(include_in_schema=False)

HINTS = {
    "name": "1 to 100 characters",
    "url": "scheme://[user:password@]host:port with http, https, socks5 or socks5h",
}


async def _render(
    request: Request,
    admin: User,
    status_code: int = 200,
    new: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    checks: dict[int, UpstreamCheck] | None = None,
) -> Response:
    async with get_state(request).sessions() as session:
        proxies = await service.list_proxies(session)
    return admin_view(
        request,
        "admin/proxies.html",
        admin,
        "proxies",
        status_code,
        proxies=proxies,
        new=new or {},
        errors=errors or {},
        checks=checks or {},
    )


@router.get("/proxies")
async def proxies_page(request: Request) -> Response:
    """Every proxy and the add form."""
    admin = await admin_page(request)
    if isinstance(admin, Response):
        return admin
    return await _render(request, admin)


@router.post("/proxies")
async def add_proxy(request: Request) -> Response:
    """Add a proxy; refusals (bad URL, name taken) next to their field."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    admin, form = posted
    url = form.get("url", "").strip()
    # A URL with credentials may hold a password: a refused form does not echo that one back.
    typed = {"name": form.get("name", "").strip(), "url": "" if "@" in url else url}
    try:
        body = NewProxy.model_validate({"name": typed["name"], "url": url})
    except ValidationError as invalid:
        return await _render(request, admin, 400, typed, field_errors(invalid, HINTS, form))
    state = get_state(request)
    try:
        async with transaction(state.sessions) as session:
            await service.create_proxy(session, state, admin.username, body)
    except GatewayError as error:
        return await _render(request, admin, error.status_code, typed, service_error(error))
    await state.invalidation.publish("upstream")
    return done("/proxies", f"Added proxy {body.name}")


@router.post("/proxies/{proxy_id}/test")
async def test_proxy(request: Request, proxy_id: str) -> Response:
    """One real call through the proxy (`upstream.checks`); the page again with the result in its row."""
    return await test_button(request, proxy_id, "proxy", plan_proxy_check, _render)


async def _confirm(
    request: Request, admin: User, proxy_id: int, status_code: int = 200, error: str = ""
) -> Response:
    async with get_state(request).sessions() as session:
        proxy = next((row for row in await service.list_proxies(session) if row.id == proxy_id), None)
    if proxy is None:
        return admin_view(request, "not_found.html", admin, "proxies", 404)
    bound = ", ".join(key.name for key in proxy.factoryKeys)
    return admin_view(
        request,
        "admin/confirm.html",
        admin,
        "proxies",
        status_code,
        heading=f"Delete proxy {proxy.name}?",
        lines=[f"{proxy.url} is removed."]
        + ([f"Factory keys use it: {bound}. Unbind or delete them first."] if bound else []),
        action=f"/proxies/{proxy.id}/delete",
        button="Delete proxy",
        back="/proxies",
        error=error,
    )


@router.get("/proxies/{proxy_id}/delete")
async def confirm_delete(request: Request, proxy_id: str) -> Response:
    """The confirmation before a deletion."""
    admin = await admin_page(request)
    if isinstance(admin, Response):
        return admin
    return await _confirm(request, admin, row_id_of(proxy_id) or 0)


@router.post("/proxies/{proxy_id}/delete")
async def delete(request: Request, proxy_id: str) -> Response:
    """Delete the proxy (refused while factory keys use it)."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    admin, _form = posted
    number = row_id_of(proxy_id) or 0
    state = get_state(request)
    try:
        async with transaction(state.sessions) as session:
            await service.delete_proxy(session, state, admin.username, number)
    except GatewayError as error:
        return await _confirm(request, admin, number, error.status_code, error.message)
    await state.invalidation.publish("upstream")
    return done("/proxies", "Deleted the proxy")
