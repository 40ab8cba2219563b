"""What an invite does once its registration is through: the referral is recorded, or a redemption code
given as the invite is redeemed for the new account (so one code admits one account)."""

from __future__ import annotations

import logging

from trollllm.db import transaction
from trollllm.errors import GatewayError
from trollllm.payments.codes import normalize
from trollllm.payments.redemption import redeem
from trollllm.payments.referrals import record_referral
from trollllm.state import AppState

logger = logging.getLogger("trollllm.payments")


async def welcome_new_user(state: AppState, user_id: int, code: str | None, address: str) -> None:
    """Apply the invite `code` a registration came with: an invite link's code makes its owner the
    referrer; a redemption code is redeemed for the new user. An unknown code changes nothing."""
    if not code or await record_referral(state, user_id, code):
        return
    if normalize(code) is None:  # not the shape of a redemption code: nothing to look up
        return
    try:
        async with transaction(state.sessions) as session:
            await redeem(state, session, user_id, code, address)
    except GatewayError as refused:  # used by a parallel registration meanwhile: the account stays
        logger.info("invite code not redeemed at registration", extra={"error_type": refused.error_type})
