"""The audit log: every admin write records who did what to which thing, before and after."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.audit.tables import AuditEntry
from trollllm.state import AppState


async def record_audit(
    session: AsyncSession,
    state: AppState,
    *,
    actor: str,
    action: str,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add an audit entry in the caller's transaction (so it commits or rolls back with the write).

    Snapshots must never contain a whole key: pass views that hold only `last4`.
    """
    session.add(
        AuditEntry(
            actor=actor,
            action=action,
            target=target[:200],
            before_json=orjson.dumps(before, default=str).decode() if before is not None else None,
            after_json=orjson.dumps(after, default=str).decode() if after is not None else None,
            created_at=state.clock.now(),
        )
    )
