"""The provider-key endpoints of SPEC §7: a user's own keys, saved encrypted and shown by last 4 only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field, StringConstraints
from starlette.responses import Response

from trollllm.accounts.sessions import CurrentUser
from trollllm.byok.service import check_saved_key, delete_key, save_key, saved_keys
from trollllm.byok.tables import ProviderKey
from trollllm.state import get_state

router = APIRouter(prefix="/api/user/provider-keys", tags=["provider keys"])

ProviderName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="e.g. `openai`")]


class ProviderKeyIn(BaseModel):
    """The body of `PUT /api/user/provider-keys/{provider}`."""

    apiKey: Annotated[str, StringConstraints(strict=True, min_length=8, max_length=512, pattern=r"^\S+$")] = (
        Field(description="the provider's API key; stored encrypted, never shown again")
    )


class ProviderKeyView(BaseModel):
    """A saved key as the user sees it: its provider, last 4 characters, when it was added, and what the
    provider last said of it."""

    provider: str
    last4: str
    addedAt: datetime
    status: Literal["unverified", "verified", "invalid"] = Field(
        description="`verified` once the provider accepted the key, `invalid` after it answered 401 to it, "
        "`unverified` until then (or when the check on save could not reach the provider)"
    )
    statusAt: datetime | None = Field(description="when the provider last said so")

    @classmethod
    def of(cls, row: ProviderKey) -> ProviderKeyView:
        """The view of a row."""
        return cls(
            provider=row.provider,
            last4=row.last4,
            addedAt=row.added_at,
            status=row.status,
            statusAt=row.status_at,
        )


@router.get("", response_model=list[ProviderKeyView])
async def list_keys(user: CurrentUser, request: Request) -> list[ProviderKeyView]:
    """The caller's saved provider keys (last 4 only)."""
    async with get_state(request).sessions() as session:
        return [ProviderKeyView.of(row) for row in await saved_keys(session, user.id)]


@router.put("/{provider}", response_model=ProviderKeyView)
async def put_key(
    provider: ProviderName, body: ProviderKeyIn, user: CurrentUser, request: Request
) -> ProviderKeyView:
    """Save or replace the caller's key for `provider` (404 for a provider the gateway does not know).

    The key is then checked with one `GET {API root}/models`: `status` is `verified`, `invalid` (the
    provider refused it) or `unverified` (the provider could not be reached); it is saved in every case.
    """
    state = get_state(request)
    row = await save_key(state, user.id, provider, body.apiKey)
    return ProviderKeyView.of(await check_saved_key(state, row, body.apiKey))


@router.delete("/{provider}", status_code=204)
async def remove_key(provider: ProviderName, user: CurrentUser, request: Request) -> Response:
    """Forget the caller's key for `provider` (404 if none is saved)."""
    await delete_key(get_state(request), user.id, provider)
    return Response(status_code=204)
