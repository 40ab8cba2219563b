"""Reading and replacing the refused `anthropic-beta` values (audited; the route owns the commit)."""

from __future__ import annotations

import re

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.audit.service import record_audit
from trollllm.betas.tables import AnthropicBetaRefusal
from trollllm.errors import InvalidRequest
from trollllm.state import AppState

MAX_REFUSED = 200
_REFUSABLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,126}\*?$")


async def refused_values(session: AsyncSession) -> list[str]:
    """The refused values, sorted."""
    return list(
        await session.scalars(select(AnthropicBetaRefusal.value).order_by(AnthropicBetaRefusal.value))
    )


def checked_values(values: list[str]) -> list[str]:
    """The values as stored (trimmed, deduplicated, sorted); 400 naming `refused` for a malformed one."""
    cleaned = sorted({value.strip() for value in values})
    if len(cleaned) > MAX_REFUSED:
        raise InvalidRequest(f"at most {MAX_REFUSED} refused values", field="refused")
    for value in cleaned:
        if not _REFUSABLE.fullmatch(value):
            raise InvalidRequest(
                f"{value!r} is not an anthropic-beta value (letters, digits, `.`, `_`, `-`; a trailing `*` "
                "refuses every value with that prefix)",
                field="refused",
            )
    return cleaned


async def replace_refused(session: AsyncSession, state: AppState, actor: str, values: list[str]) -> list[str]:
    """Replace the refused values with `values` (checked first: a bad one changes nothing)."""
    cleaned = checked_values(values)
    before = await refused_values(session)
    await session.execute(delete(AnthropicBetaRefusal))
    now = state.clock.now()
    session.add_all(AnthropicBetaRefusal(value=value, created_at=now) for value in cleaned)
    await session.flush()
    await record_audit(
        session,
        state,
        actor=actor,
        action="anthropic_betas.update",
        target="anthropic-beta",
        before={"refused": before},
        after={"refused": cleaned},
    )
    return cleaned
