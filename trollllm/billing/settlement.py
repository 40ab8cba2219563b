"""Settlement: releasing a request's hold and charging its real cost.

`settle` releases the hold and charges the real cost (never more than the hold), taking credits first,
then refCredits, with its ledger entry and request log in the same transaction; for a Friend Key it also
moves the cap's `used_nanos` and the key's counters there, and for usage windows their buckets
(`trollllm.billing.windows`). `log_unbilled` records a request that is not charged.

Both are SQL programs (`trollllm.storage.sqlprogram`), run like `trollllm.billing.holds.place_hold`: one
transaction that opens with a write, rows locked in one order everywhere (hold, user, friend key model
limit, friend key).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from trollllm.billing import windows as windows_program
from trollllm.billing.holds import HeldRequest
from trollllm.billing.ledger import CHARGE
from trollllm.billing.records import INSERT_LOG, RequestRecord, log_row
from trollllm.money import ChargeSplit, Money, TokenUsage, split_charge
from trollllm.storage.sqlprogram import Program, Query

logger = logging.getLogger("trollllm.billing")


@dataclass(frozen=True, slots=True)
class Charged:
    """The outcome of settlement: what was taken from each balance, and what is left."""

    cost: Money
    from_credits: Money
    from_ref_credits: Money
    credits_after: Money
    ref_credits_after: Money


# A late settlement replaces the row the sweeper wrote when it released the hold.
_DROP_UNSETTLED_LOG = "DELETE FROM request_logs WHERE request_id = :request_id AND error_type = 'unsettled'"
# By its id (no index needed), and its request: SQLite may give a later hold the id of one the sweeper freed.
# Counted (1: released, 0: the sweeper freed it); the amount is the hold's own, `HeldRequest.amount`.
_RELEASE_HOLD = "DELETE FROM holds WHERE id = :hold_id AND request_id = :request_id"
# Read before the one UPDATE that releases the hold and takes the charge; on PostgreSQL it locks the row (on
# SQLite the transaction already holds the write lock).
_BALANCES_TO_SETTLE = "SELECT credits_nanos, ref_credits_nanos, held_nanos FROM users WHERE id = :user_id"
_BALANCES_TO_SETTLE_PG = f"{_BALANCES_TO_SETTLE} FOR UPDATE"
_SETTLE_USER = (
    "UPDATE users SET held_nanos = held_nanos - :released, "
    "monthly_tokens_held = monthly_tokens_held - :released_tokens, "
    "credits_nanos = credits_nanos - :from_credits, ref_credits_nanos = ref_credits_nanos - :from_ref, "
    "tokens_used = tokens_used + :total, monthly_tokens_used = monthly_tokens_used + :total, "
    "total_input_tokens = total_input_tokens + :input, total_output_tokens = total_output_tokens + :output, "
    "total_cache_write_tokens = total_cache_write_tokens + :cache_write, "
    "total_cache_hit_tokens = total_cache_hit_tokens + :cache_hit WHERE id = :user_id"
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
_CAP_USED = (
    "UPDATE friend_key_model_limits SET used_nanos = used_nanos + :charge "
    "WHERE friend_key_id = :friend_key_id AND model_id = :model_id"
)
_FRIEND_KEY_USED = (
    "UPDATE friend_keys SET total_used_nanos = total_used_nanos + :charge, "
    "requests_count = requests_count + 1, last_used_at = :now WHERE id = :friend_key_id"
)
INSERT_LEDGER = (
    "INSERT INTO ledger_entries (user_id, kind, credits_delta_nanos, ref_credits_delta_nanos, reason, actor, "
    "request_id, created_at) VALUES (:user_id, :kind, :credits_delta, :ref_delta, :reason, 'proxy', "
    ":request_id, :now)"
)

# The charge of `_SETTLE_USER`, `INSERT_LEDGER` (with a charge) and `INSERT_LOG` as one PostgreSQL statement.
_CHARGED_PG = (
    "WITH charged AS (UPDATE users SET credits_nanos = credits_nanos - :from_credits, "
    "ref_credits_nanos = ref_credits_nanos - :from_ref, tokens_used = tokens_used + :total, "
    "monthly_tokens_used = monthly_tokens_used + :total, "
    "total_input_tokens = total_input_tokens + :input, total_output_tokens = total_output_tokens + :output, "
    "total_cache_write_tokens = total_cache_write_tokens + :cache_write, "
    "total_cache_hit_tokens = total_cache_hit_tokens + :cache_hit WHERE id = :user_id RETURNING id)"
)
_CHARGE_LOG_PG = f"{_CHARGED_PG} {INSERT_LOG}"
_LEDGER_PG = (
    "ledger AS (INSERT INTO ledger_entries (user_id, kind, credits_delta_nanos, ref_credits_delta_nanos, "
    "reason, actor, request_id, created_at) VALUES (:user_id, :kind, :credits_delta, :ref_delta, :reason, "
    "'proxy', :request_id, :now) RETURNING id)"
)
_CHARGE_LEDGER_LOG_PG = f"{_CHARGED_PG}, {_LEDGER_PG} {INSERT_LOG}"  # fixed fragments, bound values only


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
        hold_row = {"hold_id": hold_id, "request_id": held.request_id}
        (deleted,), *_ = yield Query(_RELEASE_HOLD, hold_row, answer="count")
        released = held.amount.nanos if deleted else None
        user_row = {"user_id": held.user_id}
        (credits_nanos, ref_nanos, held_before), *_ = yield Query(
            _BALANCES_TO_SETTLE_PG if one_statement else _BALANCES_TO_SETTLE, user_row
        )
        held_nanos = held_before - (released or 0)
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
    log_values = log_row(held, usage, record, charge, now)
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
        rows = {**charge_row, **ledger_row, **log_values}
        yield Query(_CHARGE_LEDGER_LOG_PG if charge.nanos else _CHARGE_LOG_PG, rows)
        return _charged(charge, split, credits, ref_credits)
    release_row = {"released": released or 0, "released_tokens": 0 if released is None else held.tokens}
    yield Query(_SETTLE_USER, {**charge_row, **release_row})
    if held.friend_key_id is not None:
        if charge.nanos and cap_room is not None:
            yield Query(_CAP_USED, {**cap_row, "charge": charge.nanos})
        if record.is_success or charge.nanos > 0:
            yield Query(
                _FRIEND_KEY_USED, {"charge": charge.nanos, "now": now, "friend_key_id": held.friend_key_id}
            )
    if charge.nanos:
        yield Query(INSERT_LEDGER, ledger_row)
    yield Query(INSERT_LOG, log_values)
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
    yield Query(INSERT_LOG, log_row(held, usage, record, Money.ZERO, now))
    (credits_nanos, ref_nanos), *_ = yield Query(_BALANCES, {"user_id": held.user_id})
    return Charged(Money.ZERO, Money.ZERO, Money.ZERO, Money(int(credits_nanos)), Money(int(ref_nanos)))
