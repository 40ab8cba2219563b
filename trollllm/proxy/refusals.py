"""Refused requests in the history (SPEC §7): a request the gate refused with 401 (a known user's rotated,
paused or inactive-owner key), 402, 403, 404 or 429 is logged for its owner with its error type and
message, charged nothing.

Only the refusal path pays for this: one insert (and, when the key itself was refused, one indexed
lookup of whose key it was). A key nobody owns is not logged: there is no one to show it to.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import orjson
from sqlalchemy import insert, select

from trollllm.accounts.tables import ApiKey
from trollllm.crypto import FRIEND_KEY_PREFIX, mask_secrets
from trollllm.db import write_connection
from trollllm.errors import GatewayError
from trollllm.friendkeys.tables import FriendKey
from trollllm.proxy.fastpath import ProxyCall
from trollllm.proxy.gate import Caller
from trollllm.state import AppState
from trollllm.usage.history import REFUSAL_STATUSES
from trollllm.usage.tables import RequestLog

logger = logging.getLogger("trollllm.proxy")

_MAX_MESSAGE = 300
_MAX_MODEL = 128
_MAX_KEY_LENGTH = 256


@dataclass(frozen=True, slots=True)
class _Owner:
    user_id: int
    api_key_id: int | None
    friend_key_id: int | None


def _owner_of(caller: Caller) -> _Owner:
    return _Owner(caller.user_id, caller.api_key_id, caller.friend_key_id)


async def _owner_of_key(state: AppState, key: str | None) -> _Owner | None:
    """Whose key this is, live or not (a rotated key keeps its row, a paused friend key too)."""
    if not key or len(key) > _MAX_KEY_LENGTH:
        return None
    digest = state.keybox.digest(key)
    async with state.sessions() as session:
        if key.startswith(FRIEND_KEY_PREFIX):
            friend = (
                await session.execute(
                    select(FriendKey.id, FriendKey.owner_id).where(FriendKey.key_digest == digest)
                )
            ).first()
            return None if friend is None else _Owner(friend[1], None, friend[0])
        own = (
            await session.execute(select(ApiKey.id, ApiKey.user_id).where(ApiKey.key_digest == digest))
        ).first()
        return None if own is None else _Owner(own[1], own[0], None)


def _model_of(call: ProxyCall) -> str:
    if call.model:
        return call.model
    try:
        body = orjson.loads(call.body)
    except orjson.JSONDecodeError:
        return ""
    model = body.get("model") if isinstance(body, dict) else None
    return model[:_MAX_MODEL] if isinstance(model, str) else ""


async def log_refusal(
    state: AppState,
    call: ProxyCall,
    error: GatewayError,
    started: float,
    caller: Caller | None,
    key: str | None,
) -> None:
    """Log `error` for the key's owner when it is a refusal the history shows; never raises."""
    if error.status_code not in REFUSAL_STATUSES:
        return
    try:
        owner = _owner_of(caller) if caller is not None else await _owner_of_key(state, key)
        if owner is None:
            return
        row = {
            "request_id": call.request_id,
            "user_id": owner.user_id,
            "user_key_id": owner.api_key_id,
            "friend_key_id": owner.friend_key_id,
            "is_friend_key_request": owner.friend_key_id is not None,
            "model": _model_of(call),
            "status_code": error.status_code,
            "latency_ms": int((time.perf_counter() - started) * 1000),
            "is_success": False,
            "error_type": error.error_type,
            "error_message": mask_secrets(error.message)[:_MAX_MESSAGE],
            "created_at": state.clock.now(),
        }
        async with write_connection(state.sessions) as connection:
            await connection.execute(insert(RequestLog).values(**row))
    except Exception:  # the refusal itself still answers; its log line is what is lost
        logger.exception("could not log a refused request", extra={"request_id": call.request_id})
