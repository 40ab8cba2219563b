"""Invites: what lets someone register while `TROLLLLM_REGISTRATION=invite` (SPEC §9).

`check_invite` is the one place an invite is judged. Referral links and redemption codes belong to
payments (SPEC §10, issue 25), which plugs its checks in here; until then a referral code is accepted when
it is some user's referral code (once users have one) and everything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.accounts.tables import User


@dataclass(frozen=True, slots=True)
class Invite:
    """The codes a registration came with (the body's `referralCode` and `redemptionCode`)."""

    referral_code: str | None = None
    redemption_code: str | None = None


async def check_invite(session: AsyncSession, invite: Invite) -> bool:
    """True when `invite` admits a registration; the field it came in does not matter to the caller."""
    referral_column = getattr(User, "referral_code", None)  # added with referrals (issue 25)
    if invite.referral_code and referral_column is not None:
        return bool(await session.scalar(select(exists().where(referral_column == invite.referral_code))))
    return False
