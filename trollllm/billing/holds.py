"""Holds: reserving a proxied request's maximum cost before it is sent.

`place_hold` reserves a request's maximum cost with one conditional UPDATE (available = credits +
refCredits − held ≥ hold), so concurrent requests can never reserve more than the balance. A Friend Key
request also reserves it on the key's cap for that model (used + held + hold ≤ limit) in the same
transaction: both reservations are made, or neither. With usage windows, the hold is held in them in the
same transaction too (`trollllm.billing.windows`). `trollllm.billing.settlement` releases the hold.

It is a SQL program (`trollllm.storage.sqlprogram`): plain SQL run without compilation, on SQLite in one
synchronous `BEGIN IMMEDIATE` transaction, on PostgreSQL in one transaction. It opens with a write, so the
user row is locked before balances are read. Rows are locked in one order everywhere (hold, user, friend
key model limit, friend key), so settlements, sweeps and Friend Key edits cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from trollllm.billing import windows as windows_program
from trollllm.billing.windows import WindowLimit
from trollllm.friendkeys.resets import next_reset_after
from trollllm.money import Money
from trollllm.settings import HOLD_TTL
from trollllm.storage.sqlprogram import Program, Query


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


UNLIMITED_TOKENS = 2**62
"""The monthly token limit passed to `place_hold` for a plan without one."""

# SPEC §5: admitted while the tokens used plus the maximum of every request in flight stay below the limit.
_RESERVE_ON_USER = (
    "UPDATE users SET held_nanos = held_nanos + :amount, monthly_tokens_held = monthly_tokens_held + :tokens "
    "WHERE id = :user_id AND is_active AND credits_nanos + ref_credits_nanos - held_nanos >= :amount "
    "AND monthly_tokens_used + monthly_tokens_held < :token_limit"
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
_INSERT_HOLD = _HOLD_VALUES + ":window_spans)"


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
_AVAILABLE = "SELECT credits_nanos + ref_credits_nanos - held_nanos FROM users WHERE id = :user_id"


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
    (reserved,), *_ = yield Query(_RESERVE_ON_USER, reserve_row, answer="count")
    if not reserved:
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
        (hold_id,), *_ = yield Query(_INSERT_HOLD, hold_row, answer="new_id")
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


SQL_VARIANTS = {"hold_sql": [_insert_hold_in_windows(room) for room in windows_program.ROOM_EXAMPLES]}
"""Examples of the SQL built here, for the test that compiles every program's SQL against the schema."""
