"""What the proxy asks of a Friend Key: which models it may call, and why a hold was refused.

The decision itself is the conditional UPDATE in `trollllm.billing.holds.place_hold`; this module only
names the refusal afterwards (SPEC §6 order: model not allowed, then cap exceeded, then owner credits),
reading the cap row as it is now. The owner's balance is never read here, so it cannot leak into a
Friend Key's error.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from trollllm.errors import (
    FriendKeyModelLimitExceeded,
    FriendKeyModelNotAllowed,
    GatewayError,
    OwnerCreditsExhausted,
)
from trollllm.friendkeys.tables import FriendKeyModelLimit
from trollllm.money import Money

_limits = cast(Table, FriendKeyModelLimit.__table__)


async def allowed_model_ids(connection: AsyncConnection, friend_key_id: int) -> set[str]:
    """Models this Friend Key may call: enabled in its limits with a limit above 0."""
    rows = await connection.execute(
        select(_limits.c.model_id).where(
            _limits.c.friend_key_id == friend_key_id,
            _limits.c.enabled.is_(True),
            _limits.c.limit_nanos > 0,
        )
    )
    return {row[0] for row in rows}


async def hold_refusal(
    connection: AsyncConnection, friend_key_id: int, model_id: str, required: Money, *, cap_refused: bool
) -> GatewayError:
    """The 402 for a Friend Key request whose hold was refused.

    `cap_refused` says the cap's conditional UPDATE refused (the owner's balance had covered the hold);
    otherwise the owner's balance refused first and the cap row decides whether the friend sees a cap
    error (which comes first in SPEC §6) or `owner_credits_exhausted`.
    """
    row = (
        await connection.execute(
            select(
                _limits.c.limit_nanos, _limits.c.used_nanos, _limits.c.held_nanos, _limits.c.enabled
            ).where(_limits.c.friend_key_id == friend_key_id, _limits.c.model_id == model_id)
        )
    ).first()
    if row is None or not row.enabled or row.limit_nanos <= 0:
        return FriendKeyModelNotAllowed()
    if cap_refused or row.used_nanos + row.held_nanos + required.nanos > row.limit_nanos:
        return FriendKeyModelLimitExceeded(
            model=model_id,
            limitUsd=Money(row.limit_nanos).to_json(),
            usedUsd=Money(row.used_nanos).to_json(),
            requiredUsd=required.to_json(),
        )
    return OwnerCreditsExhausted()
