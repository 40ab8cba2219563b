"""`GET/PUT /api/user/settings` (SPEC §7): the user's time zone, an IANA name (default `UTC`)."""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import update

from trollllm.accounts.sessions import CurrentUser
from trollllm.accounts.tables import User
from trollllm.db import transaction
from trollllm.errors import InvalidRequest
from trollllm.state import get_state

router = APIRouter(tags=["accounts"])


class UserSettings(BaseModel):
    """The user's settings."""

    timeZone: str = Field(description="an IANA time zone name, e.g. `Europe/Paris`; Friend Key caps reset at "
                          "00:00 there")  # fmt: skip


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


@router.get("/api/user/settings", response_model=UserSettings)
async def show_settings(user: CurrentUser) -> UserSettings:
    """The caller's settings."""
    return UserSettings(timeZone=user.time_zone)


@router.put("/api/user/settings", response_model=UserSettings)
async def put_settings(body: UserSettings, user: CurrentUser, request: Request) -> UserSettings:
    """Set the caller's time zone (400 naming `timeZone` when it is not an IANA name)."""
    if body.timeZone not in _time_zones():
        raise InvalidRequest(f"timeZone: `{body.timeZone[:64]}` is not an IANA time zone", field="timeZone")
    async with transaction(get_state(request).sessions) as session:
        await session.execute(
            update(User)
            .where(User.id == user.id)
            .values(time_zone=body.timeZone)
            .execution_options(synchronize_session=False)
        )
    return body
