"""The user's time zone (SPEC §7 `GET/PUT /api/user/settings`): every time on the pages, the history
filter, the charts and the CSV are shown in it. An IANA name; `UTC` by default."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo, available_timezones

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StrictStr

from trollllm.accounts.sessions import CurrentUser
from trollllm.accounts.tables import User
from trollllm.db import transaction
from trollllm.errors import InvalidRequest
from trollllm.state import get_state

DEFAULT_TIME_ZONE = "UTC"

router = APIRouter(tags=["accounts"])


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones()) | {DEFAULT_TIME_ZONE}


def known_zone(name: str) -> bool:
    """True for an IANA time zone name the system knows."""
    return name in _known_zones()


def zone_names() -> list[str]:
    """Every known zone name, sorted (for a form's suggestions)."""
    return sorted(_known_zones())


def zone_of(name: str | None) -> ZoneInfo:
    """The zone of a stored name; an unknown one (a zone removed from the system database) is UTC."""
    return ZoneInfo(name if name in _known_zones() else DEFAULT_TIME_ZONE)


class UserSettings(BaseModel):
    """`{timeZone}`: an IANA time zone name such as `Europe/Paris`."""

    timeZone: Annotated[StrictStr, Field(max_length=64, examples=["Europe/Paris"])]


@router.get("/api/user/settings", response_model=UserSettings)
async def read_settings(user: CurrentUser) -> UserSettings:
    """The caller's settings."""
    return UserSettings(timeZone=user.time_zone or DEFAULT_TIME_ZONE)


@router.put("/api/user/settings", response_model=UserSettings)
async def write_settings(body: UserSettings, user: CurrentUser, request: Request) -> UserSettings:
    """Set the caller's time zone (400 naming `timeZone` for a name that is not an IANA zone)."""
    if not known_zone(body.timeZone):
        raise InvalidRequest(
            "timeZone must be an IANA time zone name, e.g. Europe/Paris or America/New_York",
            field="timeZone",
        )
    async with transaction(get_state(request).sessions) as session:
        row = await session.get_one(User, user.id)
        row.time_zone = body.timeZone
    return UserSettings(timeZone=body.timeZone)
