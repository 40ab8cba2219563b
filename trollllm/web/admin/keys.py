"""`/keys`: users' live API keys, masked, searchable and paged; a revocation asks for confirmation first.

The confirmation is its own page (`GET /keys/{username}/revoke`), so it works without JavaScript; the
revocation itself is the operator API's service call, audited.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import Response

from trollllm.accounts.apikeys import live_api_key
from trollllm.accounts.tables import User
from trollllm.admin.keys import list_live_keys, revoke_user_key
from trollllm.crypto import mask_key
from trollllm.db import transaction
from trollllm.errors import GatewayError
from trollllm.fields import DEFAULT_PAGE_SIZE
from trollllm.state import get_state
from trollllm.web.admin.access import admin_form, admin_page, admin_view, done, page_number
from trollllm.web.admin.users import MAX_SEARCH
from trollllm.web.history import page_numbers

router = APIRouter(include_in_schema=False)


@router.get("/keys")
async def keys_page(request: Request) -> Response:
    """Live user keys by username (`search`: a username substring), 20 a page."""
    admin = await admin_page(request)
    if isinstance(admin, Response):
        return admin
    search = request.query_params.get("search", "").strip()
    error = None
    if len(search) > MAX_SEARCH:
        error, search = f"Search for at most {MAX_SEARCH} characters", ""
    number = page_number(request)
    async with get_state(request).sessions() as session:
        keys, total = await list_live_keys(
            session, page=number, limit=DEFAULT_PAGE_SIZE, search=search or None
        )
    total_pages = -(-total // DEFAULT_PAGE_SIZE)
    return admin_view(
        request,
        "admin/keys.html",
        admin,
        "keys",
        keys=keys,
        total=total,
        page_number=number,
        total_pages=total_pages,
        page_numbers=page_numbers(number, total_pages),
        search=search,
        keep="&" + urlencode({"search": search}),
        error=error,
    )


async def _confirm(
    request: Request, admin: User, username: str, status_code: int = 200, error: str = ""
) -> Response:
    async with get_state(request).sessions() as session:
        user = await session.scalar(select(User).where(User.username == username))
        key = await live_api_key(session, user.id) if user is not None else None
    if key is None:
        return admin_view(request, "not_found.html", admin, "keys", 404)
    return admin_view(
        request,
        "admin/confirm.html",
        admin,
        "keys",
        status_code,
        heading=f"Revoke {username}'s API key?",
        lines=[
            f"The key {mask_key(key.last4)} stops working at once: every request with it is refused.",
            f"{username} can make a new key by rotating it on their dashboard.",
        ],
        action=f"/keys/{quote(username)}/revoke",
        button="Revoke key",
        back="/keys",
        error=error,
    )


@router.get("/keys/{username}/revoke")
async def confirm_revoke(request: Request, username: str) -> Response:
    """The confirmation before a revocation."""
    admin = await admin_page(request)
    if isinstance(admin, Response):
        return admin
    return await _confirm(request, admin, username)


@router.post("/keys/{username}/revoke")
async def revoke(request: Request, username: str) -> Response:
    """Revoke the user's live key (audited), then back to `/keys`."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    admin, _form = posted
    state = get_state(request)
    try:
        async with transaction(state.sessions) as session:
            revoked = await revoke_user_key(session, state, admin.username, username)
    except GatewayError as error:
        return await _confirm(request, admin, username, error.status_code, error.message)
    return done("/keys", f"Revoked {revoked.username}'s key {revoked.revokedKey}")
