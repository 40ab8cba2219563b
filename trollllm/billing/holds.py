"""Holds and settlement: the prepaid money path of every proxied request.

1. `place_hold` reserves a request's maximum cost with one conditional UPDATE (available = credits +
   refCredits − held ≥ hold), so concurrent requests can never reserve more than the balance. A Friend Key
   request also reserves it on the key's cap for that model (used + held + hold ≤ limit) in the same
   transaction: both reservations are made, or neither.
2. `settle` releases the hold and charges the real cost (never more than the hold), taking credits first,
   then refCredits, with its ledger entry and request log in the same transaction; for a Friend Key it
   also moves the cap's `used_nanos` and the key's counters there.

Both are SQL programs (`trollllm.storage.sqlprogram`): plain SQL run without compilation, on SQLite in one
synchronous `BEGIN IMMEDIATE` transaction, on PostgreSQL in one transaction. Both open with a write, so
the user row is locked before balances are read. Rows are locked in one order everywhere (hold, user,
friend key model limit, friend key), so settlements, sweeps and Friend Key edits cannot deadlock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from trollllm.billing import windows as windows_program
from trollllm.billing.ledger import CHARGE
from trollllm.billing.windows import WindowLimit
from trollllm.friendkeys.resets import next_reset_after
from trollllm.money import ChargeSplit, Money, TokenUsage, split_charge
from trollllm.settings import HOLD_TTL
from trollllm.storage.sqlprogram import Program, Query

logger = logging.getLogger("trollllm.billing")

UNSETTLED = "unsettled"
"""`error_type` of the log row the sweeper writes for a hold it released (its request never settled)."""


class FriendKeyCapRefused(Exception):
    """The Friend Key's cap on the model cannot take the hold (raised so its transaction rolls back)."""


@dataclass(frozen=True, slots=True)
class HeldRequest:
    """A request whose maximum cost is reserved."""

    request_id: str
    user_id: int
    amount: Money
    model_id: str
    friend_key_id: int | None = None
    tokens: int = 0  # the request's token maximum, held against the monthly token limit
    window_spans: int = 0  # the usage-window buckets it is held in (`trollllm.billing.windows`)
    admitted_s: int = 0  # when it was admitted (Unix seconds): which buckets


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


@dataclass(frozen=True, slots=True)
class Charged:
    """The outcome of settlement: what was taken from each balance, and what is left."""

    cost: Money
    from_credits: Money
    from_ref_credits: Money
    credits_after: Money
    ref_credits_after: Money


UNLIMITED_TOKENS = 2**62
"""The monthly token limit passed to `place_hold` for a plan without one."""

# SPEC §5: admitted while the tokens used plus the maximum of every request in flight stay below the limit.
_RESERVE_ON_USER = (
    "UPDATE users SET held_nanos = held_nanos + :amount, monthly_tokens_held = monthly_tokens_held + :tokens "
    "WHERE id = :user_id AND is_active AND credits_nanos + ref_credits_nanos - held_nanos >= :amount "
    "AND monthly_tokens_used + monthly_tokens_held < :token_limit RETURNING id"
)
_RESERVE_ON_CAP = (
    "UPDATE friend_key_model_limits SET held_nanos = held_nanos + :amount "
    "WHERE friend_key_id = :friend_key_id AND model_id = :model_id AND enabled AND limit_nanos > 0 "
    "AND used_nanos + held_nanos + :amount <= limit_nanos RETURNING friend_key_id"
)
# A cap whose reset time has passed starts again at 0 used (its open holds stay held).
_RESET_CAP_IF_DUE = (
    "UPDATE friend_key_model_limits SET used_nanos = 0 WHERE friend_key_id = :friend_key_id "
    "AND model_id = :model_id AND next_reset_at <= :now RETURNING reset_period"
)
_NEXT_CAP_RESET = (
    "UPDATE friend_key_model_limits SET next_reset_at = :next_reset_at "
    "WHERE friend_key_id = :friend_key_id AND model_id = :model_id"
)
_HOLD_VALUES = (
    "INSERT INTO holds (request_id, user_id, amount_nanos, friend_key_id, model_id, created_at, expires_at, "
    "tokens, window_spans) VALUES (:request_id, :user_id, :amount, :friend_key_id, :model_id, :created_at, "
    ":expires_at, :tokens, "
)
_INSERT_HOLD = _HOLD_VALUES + ":window_spans) RETURNING id"


@cache
def _insert_hold_in_windows(room_sql: str) -> str:
    """`_INSERT_HOLD` whose `window_spans` are the spans whose windows have room (`room_sql`)."""
    return f"{_HOLD_VALUES}{room_sql}) RETURNING id, window_spans"


# `_RESERVE_ON_USER` then `_INSERT_HOLD` (with no Friend Key) as one PostgreSQL statement.
_RESERVE_AND_HOLD_PG = (
    "WITH reserved AS (UPDATE users SET held_nanos = held_nanos + :amount, "
    "monthly_tokens_held = monthly_tokens_held + :tokens WHERE id = :user_id AND is_active "
    "AND credits_nanos + ref_credits_nanos - held_nanos >= :amount "
    "AND monthly_tokens_used + monthly_tokens_held < :token_limit RETURNING id) "
    "INSERT INTO holds (request_id, user_id, amount_nanos, friend_key_id, model_id, created_at, expires_at, "
    "tokens, window_spans) SELECT :request_id, id, :amount, NULL, :model_id, :created_at, :expires_at, "
    ":tokens, 0 FROM reserved RETURNING id"
)
# A late settlement replaces the row the sweeper wrote when it released the hold.
_DROP_UNSETTLED_LOG = "DELETE FROM request_logs WHERE request_id = :request_id AND error_type = 'unsettled'"
_AVAILABLE = "SELECT credits_nanos + ref_credits_nanos - held_nanos FROM users WHERE id = :user_id"
# By its id (no index needed), and its request: SQLite may give a later hold the id of one the sweeper freed.
_RELEASE_HOLD = "DELETE FROM holds WHERE id = :hold_id AND request_id = :request_id RETURNING amount_nanos"
_RELEASE_ON_USER = (
    "UPDATE users SET held_nanos = held_nanos - :released, "
    "monthly_tokens_held = monthly_tokens_held - :released_tokens WHERE id = :user_id "
    "RETURNING credits_nanos, ref_credits_nanos, held_nanos"
)
# Floored at 0: a cap row removed and re-added by the owner while a request was in flight starts again at
# 0 held, so releasing that request's hold must not drive it negative.
_RELEASE_ON_CAP = (
    "UPDATE friend_key_model_limits SET held_nanos = CASE WHEN held_nanos >= :released "
    "THEN held_nanos - :released ELSE 0 END "
    "WHERE friend_key_id = :friend_key_id AND model_id = :model_id "
    "RETURNING limit_nanos - used_nanos - held_nanos"
)
# `_RELEASE_HOLD` then `_RELEASE_ON_USER` as one PostgreSQL statement (the hold's amount, or NULL: gone).
_RELEASE_PG = (
    "WITH released AS (DELETE FROM holds WHERE id = :hold_id AND request_id = :request_id "
    "RETURNING amount_nanos, tokens) "
    "UPDATE users SET held_nanos = held_nanos - COALESCE((SELECT amount_nanos FROM released), 0), "
    "monthly_tokens_held = monthly_tokens_held - COALESCE((SELECT tokens FROM released), 0) "
    "WHERE id = :user_id RETURNING credits_nanos, ref_credits_nanos, held_nanos, "
    "(SELECT amount_nanos FROM released)"
)
_CHARGE_USER = (
    "UPDATE users SET credits_nanos = credits_nanos - :from_credits, "
    "ref_credits_nanos = ref_credits_nanos - :from_ref, tokens_used = tokens_used + :total, "
    "monthly_tokens_used = monthly_tokens_used + :total, "
    "total_input_tokens = total_input_tokens + :input, total_output_tokens = total_output_tokens + :output, "
    "total_cache_write_tokens = total_cache_write_tokens + :cache_write, "
    "total_cache_hit_tokens = total_cache_hit_tokens + :cache_hit WHERE id = :user_id"
)
_CAP_USED = (
    "UPDATE friend_key_model_limits SET used_nanos = used_nanos + :charge "
    "WHERE friend_key_id = :friend_key_id AND model_id = :model_id"
)
_FRIEND_KEY_USED = (
    "UPDATE friend_keys SET total_used_nanos = total_used_nanos + :charge, "
    "requests_count = requests_count + 1, last_used_at = :now WHERE id = :friend_key_id"
)
_INSERT_LEDGER = (
    "INSERT INTO ledger_entries (user_id, kind, credits_delta_nanos, ref_credits_delta_nanos, reason, actor, "
    "request_id, created_at) VALUES (:user_id, :kind, :credits_delta, :ref_delta, :reason, 'proxy', "
    ":request_id, :now)"
)
_INSERT_LOG = (
    "INSERT INTO request_logs (request_id, user_id, user_key_id, friend_key_id, is_friend_key_request, "
    "factory_key_id, model, input_tokens, output_tokens, cache_write_tokens, cache_hit_tokens, "
    "credits_cost_nanos, status_code, latency_ms, is_success, is_byok, is_stream, error_type, created_at) "
    "VALUES (:request_id, :user_id, :user_key_id, :friend_key_id, :is_friend, :factory_key_id, :model, "
    ":input, :output, :cache_write, :cache_hit, :cost, :status, :latency, :success, :byok, :stream, "
    ":error_type, :now)"
)

# `_CHARGE_USER`, `_INSERT_LEDGER` (with a charge) and `_INSERT_LOG` as one PostgreSQL statement.
_CHARGE_LOG_PG = (
    "WITH charged AS (UPDATE users SET credits_nanos = credits_nanos - :from_credits, "
    "ref_credits_nanos = ref_credits_nanos - :from_ref, tokens_used = tokens_used + :total, "
    "monthly_tokens_used = monthly_tokens_used + :total, "
    "total_input_tokens = total_input_tokens + :input, total_output_tokens = total_output_tokens + :output, "
    "total_cache_write_tokens = total_cache_write_tokens + :cache_write, "
    "total_cache_hit_tokens = total_cache_hit_tokens + :cache_hit WHERE id = :user_id RETURNING id) "
    "INSERT INTO request_logs (request_id, user_id, user_key_id, friend_key_id, is_friend_key_request, "
    "factory_key_id, model, input_tokens, output_tokens, cache_write_tokens, cache_hit_tokens, "
    "credits_cost_nanos, status_code, latency_ms, is_success, is_byok, is_stream, error_type, created_at) "
    "VALUES (:request_id, :user_id, :user_key_id, :friend_key_id, :is_friend, :factory_key_id, :model, "
    ":input, :output, :cache_write, :cache_hit, :cost, :status, :latency, :success, :byok, :stream, "
    ":error_type, :now)"
)
_CHARGE_LEDGER_LOG_PG = (
    "WITH charged AS (UPDATE users SET credits_nanos = credits_nanos - :from_credits, "
    "ref_credits_nanos = ref_credits_nanos - :from_ref, tokens_used = tokens_used + :total, "
    "monthly_tokens_used = monthly_tokens_used + :total, "
    "total_input_tokens = total_input_tokens + :input, total_output_tokens = total_output_tokens + :output, "
    "total_cache_write_tokens = total_cache_write_tokens + :cache_write, "
    "total_cache_hit_tokens = total_cache_hit_tokens + :cache_hit WHERE id = :user_id RETURNING id), "
    "ledger AS (INSERT INTO ledger_entries (user_id, kind, credits_delta_nanos, ref_credits_delta_nanos, "
    "reason, actor, request_id, created_at) VALUES (:user_id, :kind, :credits_delta, :ref_delta, :reason, "
    "'proxy', :request_id, :now) RETURNING id) "
    "INSERT INTO request_logs (request_id, user_id, user_key_id, friend_key_id, is_friend_key_request, "
    "factory_key_id, model, input_tokens, output_tokens, cache_write_tokens, cache_hit_tokens, "
    "credits_cost_nanos, status_code, latency_ms, is_success, is_byok, is_stream, error_type, created_at) "
    "VALUES (:request_id, :user_id, :user_key_id, :friend_key_id, :is_friend, :factory_key_id, :model, "
    ":input, :output, :cache_write, :cache_hit, :cost, :status, :latency, :success, :byok, :stream, "
    ":error_type, :now)"
)


def place_hold(
    held: HeldRequest,
    now: datetime,
    *,
    token_limit: int | None = None,
    windows: Sequence[WindowLimit] = (),
    time_zone: str = "UTC",
    one_statement: bool = False,
) -> Program[int | None]:
    """Reserve `held.amount` on the user's balance and `held.tokens` against the monthly `token_limit`
    (admitted while used + held tokens < limit): the hold's id, or None (nothing written) if either refused.

    With `held.friend_key_id`, the amount is also reserved on that key's cap for `held.model_id` (enabled,
    limit > 0, used + held + amount ≤ limit; a cap past its reset time first starts again at 0 used, its
    next reset computed in the owner's `time_zone`); when the cap refuses, `FriendKeyCapRefused` is raised
    after the balance was reserved, so the runner's transaction rolls both back. With `windows` (the plan's
    usage windows; `held.window_spans` must name their spans), amount and tokens are held in each window,
    and `WindowFull` is raised when one has no room, rolling everything back the same way.

    `one_statement` (the runner's `data_modifying_ctes`): a hold on no Friend Key and no window is the same
    conditional UPDATE and INSERT as one statement, atomic on its own, so it needs no transaction round
    trips.
    """
    amount = held.amount.nanos
    limit = UNLIMITED_TOKENS if token_limit is None else token_limit
    if one_statement and held.friend_key_id is None and not windows:
        row = {
            "amount": amount,
            "tokens": held.tokens,
            "token_limit": limit,
            "user_id": held.user_id,
            "request_id": held.request_id,
            "model_id": held.model_id,
            "created_at": now,
            "expires_at": now + HOLD_TTL,
        }
        rows = yield Query(_RESERVE_AND_HOLD_PG, row, alone=True)
        return int(rows[0][0]) if rows else None
    reserve_row = {"amount": amount, "tokens": held.tokens, "token_limit": limit, "user_id": held.user_id}
    if not (yield Query(_RESERVE_ON_USER, reserve_row)):
        return None
    if held.friend_key_id is not None:
        row = {"amount": amount, "friend_key_id": held.friend_key_id, "model_id": held.model_id}
        due = yield Query(_RESET_CAP_IF_DUE, {**row, "now": now})
        if due:  # reset now, at 00:00 in the owner's `time_zone`: the next reset of its period
            next_reset = next_reset_after(str(due[0][0]), now, time_zone)
            yield Query(_NEXT_CAP_RESET, {**row, "next_reset_at": next_reset})
        if not (yield Query(_RESERVE_ON_CAP, row)):
            raise FriendKeyCapRefused()
    hold_row = {
        "request_id": held.request_id,
        "user_id": held.user_id,
        "amount": amount,
        "friend_key_id": held.friend_key_id,
        "model_id": held.model_id,
        "created_at": now,
        "expires_at": now + HOLD_TTL,
        "tokens": held.tokens,
        "window_spans": held.window_spans,
    }
    if not windows:
        (hold_id,), *_ = yield Query(_INSERT_HOLD, hold_row)
        return int(hold_id)
    reservation = windows_program.reserve(held.user_id, windows, amount, held.tokens, held.admitted_s)
    hold_sql = _insert_hold_in_windows(reservation.room_sql)
    (hold_id, with_room), *_ = yield Query(hold_sql, {**hold_row, **reservation.params})
    windows_program.check_room(held.window_spans, int(with_room))
    yield reservation.in_buckets
    return int(hold_id)


def available_balance(user_id: int) -> Program[Money]:
    """credits + refCredits − open holds, read now (for the 402 body; never for a decision)."""
    rows = yield Query(_AVAILABLE, {"user_id": user_id})
    return Money(int(rows[0][0]))


def settle(
    held: HeldRequest,
    hold_id: int,
    cost: Money,
    usage: TokenUsage,
    record: RequestRecord,
    now: datetime,
    *,
    one_statement: bool = False,
) -> Program[Charged]:
    """Release hold `hold_id` (`place_hold`'s answer for `held`), charge `cost` (past the hold only up to
    the balance less other holds, and a Friend Key cap's room; never negative), and write the ledger entry
    and the request log.

    `one_statement` (the runner's `data_modifying_ctes`): with no Friend Key, the release is one statement
    and the charge, ledger entry and log another, so the user's row stays locked for fewer round trips.
    """
    together = one_statement and held.friend_key_id is None
    if together:
        row = {"hold_id": hold_id, "request_id": held.request_id, "user_id": held.user_id}
        (credits_nanos, ref_nanos, held_nanos, amount), *_ = yield Query(_RELEASE_PG, row)
        released = None if amount is None else int(amount)
    else:
        released_rows = yield Query(_RELEASE_HOLD, {"hold_id": hold_id, "request_id": held.request_id})
        released = int(released_rows[0][0]) if released_rows else None
        release_row = {
            "released": released or 0,
            "released_tokens": 0 if released is None else held.tokens,
            "user_id": held.user_id,
        }
        (credits_nanos, ref_nanos, held_nanos), *_ = yield Query(_RELEASE_ON_USER, release_row)
    credits, ref_credits = Money(credits_nanos), Money(ref_nanos)
    cap_row = {"friend_key_id": held.friend_key_id, "model_id": held.model_id}
    cap_room: Money | None = None
    if held.friend_key_id is not None:
        room = yield Query(_RELEASE_ON_CAP, {**cap_row, "released": released or 0})
        cap_room = Money(int(room[0][0])) if room else None  # None: the model left the key's limits
    charge = min(cost, held.amount)
    free = Money(credits_nanos + ref_nanos - held_nanos)  # the balance less every other open hold
    if released is None:
        # The sweeper already freed this hold (no longer renewed: an outbox replay): charge only what is free.
        logger.error("settling a request whose hold had expired", extra={"request_id": held.request_id})
        yield Query(_DROP_UNSETTLED_LOG, {"request_id": held.request_id})
        charge = max(min(charge, free, cap_room if cap_room is not None else charge), Money.ZERO)
    elif cost > held.amount:
        # The real cost passed the hold: the overage is charged up to what is free (and the cap's room).
        collectable = min(free, cap_room) if cap_room is not None else free
        charge = max(charge, min(cost, collectable))
        logger.warning(
            "cost exceeded the hold",
            extra={
                "request_id": held.request_id,
                "cost_nanos": cost.nanos,
                "hold_nanos": held.amount.nanos,
                "charged_nanos": charge.nanos,
                "uncollected_nanos": (cost - charge).nanos,
            },
        )
    split = split_charge(charge, credits, ref_credits)
    charge_row = {
        "from_credits": split.from_credits.nanos,
        "from_ref": split.from_ref_credits.nanos,
        "total": usage.total,
        "input": usage.input_tokens,
        "output": usage.output_tokens,
        "cache_write": usage.cache_write_tokens,
        "cache_hit": usage.cache_hit_tokens,
        "user_id": held.user_id,
    }
    ledger_row = {
        "user_id": held.user_id,
        "kind": CHARGE,
        "credits_delta": -split.from_credits.nanos,
        "ref_delta": -split.from_ref_credits.nanos,
        "reason": f"request to {record.model_id}",
        "request_id": held.request_id,
        "now": now,
    }
    log_row = _log_row(held, usage, record, charge, now)
    if held.window_spans:
        yield from windows_program.settle(
            held.user_id,
            held.window_spans,
            held.admitted_s,
            released_nanos=0 if released is None else held.amount.nanos,
            released_tokens=0 if released is None else held.tokens,
            charge_nanos=charge.nanos,
            used_tokens=usage.total,
        )
    if together:
        rows = {**charge_row, **ledger_row, **log_row}
        yield Query(_CHARGE_LEDGER_LOG_PG if charge.nanos else _CHARGE_LOG_PG, rows)
        return _charged(charge, split, credits, ref_credits)
    yield Query(_CHARGE_USER, charge_row)
    if held.friend_key_id is not None:
        if charge.nanos and cap_room is not None:
            yield Query(_CAP_USED, {**cap_row, "charge": charge.nanos})
        if record.is_success or charge.nanos > 0:
            yield Query(
                _FRIEND_KEY_USED, {"charge": charge.nanos, "now": now, "friend_key_id": held.friend_key_id}
            )
    if charge.nanos:
        yield Query(_INSERT_LEDGER, ledger_row)
    yield Query(_INSERT_LOG, log_row)
    return _charged(charge, split, credits, ref_credits)


def _charged(charge: Money, split: ChargeSplit, credits: Money, ref_credits: Money) -> Charged:
    return Charged(
        cost=charge,
        from_credits=split.from_credits,
        from_ref_credits=split.from_ref_credits,
        credits_after=credits - split.from_credits,
        ref_credits_after=ref_credits - split.from_ref_credits,
    )


_BALANCES = "SELECT credits_nanos, ref_credits_nanos FROM users WHERE id = :user_id"


def log_unbilled(
    held: HeldRequest, usage: TokenUsage, record: RequestRecord, now: datetime
) -> Program[Charged]:
    """The request log of a request that is not charged (on the user's own provider key): its real usage,
    cost 0, no hold to release, no ledger entry, no monthly token count. Returns the unchanged balances."""
    yield Query(_INSERT_LOG, _log_row(held, usage, record, Money.ZERO, now))
    (credits_nanos, ref_nanos), *_ = yield Query(_BALANCES, {"user_id": held.user_id})
    return Charged(Money.ZERO, Money.ZERO, Money.ZERO, Money(int(credits_nanos)), Money(int(ref_nanos)))


def _log_row(
    held: HeldRequest, usage: TokenUsage, record: RequestRecord, charge: Money, now: datetime
) -> dict[str, object]:
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


SQL_VARIANTS = {"hold_sql": [_insert_hold_in_windows(room) for room in windows_program.ROOM_EXAMPLES]}
"""Examples of the SQL built here, for the test that compiles every program's SQL against the schema."""
