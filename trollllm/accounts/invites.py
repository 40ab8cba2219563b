"""Invites: what lets someone register while `TROLLLLM_REGISTRATION=invite` (SPEC §9).

`check_invite` is the one place an invite is judged: an existing user's invite code (a referral link,
SPEC §10) or a redemption code that can still be used. Using the code up happens once the account exists
(`trollllm.payments.registration`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.payments.referrals import is_valid_invite


@dataclass(frozen=True, slots=True)
class Invite:
    """The codes a registration came with (the body's `referralCode` and `redemptionCode`)."""

    referral_code: str | None = None
    redemption_code: str | None = None


async def check_invite(session: AsyncSession, invite: Invite) -> bool:
    """True when `invite` admits a registration; the field it came in does not matter to the caller."""
    return await is_valid_invite(session, invite.referral_code, invite.redemption_code)
