"""What the request log keeps of a proxied request, and the one statement that writes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from trollllm.billing.holds import HeldRequest
from trollllm.money import Money, TokenUsage

UNSETTLED = "unsettled"
"""`error_type` of the log row the sweeper writes for a hold it released (its request never settled)."""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What the request log keeps of one request, besides usage and cost."""

    model_id: str
    status_code: int
    latency_ms: int
    is_success: bool
    is_stream: bool
    user_key_id: int | None = None
    friend_key_id: int | None = None
    factory_key_id: int | None = None
    is_byok: bool = False
    error_type: str | None = None


INSERT_LOG = (
    "INSERT INTO request_logs (request_id, user_id, user_key_id, friend_key_id, is_friend_key_request, "
    "factory_key_id, model, input_tokens, output_tokens, cache_write_tokens, cache_hit_tokens, "
    "credits_cost_nanos, status_code, latency_ms, is_success, is_byok, is_stream, error_type, created_at) "
    "VALUES (:request_id, :user_id, :user_key_id, :friend_key_id, :is_friend, :factory_key_id, :model, "
    ":input, :output, :cache_write, :cache_hit, :cost, :status, :latency, :success, :byok, :stream, "
    ":error_type, :now)"
)


def log_row(
    held: HeldRequest, usage: TokenUsage, record: RequestRecord, charge: Money, now: datetime
) -> dict[str, object]:
    """The parameters of `INSERT_LOG` for one request."""
    return {
        "request_id": held.request_id,
        "user_id": held.user_id,
        "user_key_id": record.user_key_id,
        "friend_key_id": record.friend_key_id,
        "is_friend": record.friend_key_id is not None,
        "factory_key_id": record.factory_key_id,
        "model": record.model_id,
        "input": usage.input_tokens,
        "output": usage.output_tokens,
        "cache_write": usage.cache_write_tokens,
        "cache_hit": usage.cache_hit_tokens,
        "cost": charge.nanos,
        "status": record.status_code,
        "latency": record.latency_ms,
        "success": record.is_success,
        "byok": record.is_byok,
        "stream": record.is_stream,
        "error_type": record.error_type,
        "now": now,
    }
