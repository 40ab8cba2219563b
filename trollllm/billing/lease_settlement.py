"""Settling a batch of requests held in credit leases (`trollllm.billing.leases`) in one transaction: each
charge spent from its lease and the user's held amount, taken from credits then refCredits, with its ledger
entry and request log. On PostgreSQL a batch on one lease is one statement (`settle_one_lease`); on SQLite
the ledger entries and logs are written a row at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from trollllm.billing.holds import HeldRequest
from trollllm.billing.ledger import CHARGE
from trollllm.billing.records import INSERT_LOG, RequestRecord, log_row
from trollllm.billing.settlement import INSERT_LEDGER, Charged, settle
from trollllm.money import Money, TokenUsage, split_charge
from trollllm.storage.sqlprogram import Program, Query

_SPEND_LEASE = (
    "UPDATE credit_leases SET amount_nanos = amount_nanos - :charged, expires_at = :expires_at "
    "WHERE id = :lease_id AND instance_id = :instance_id"
)
_USER_BALANCES = "SELECT credits_nanos, ref_credits_nanos, held_nanos FROM users WHERE id = :user_id"
_LOCK_USER_PG = f"{_USER_BALANCES} FOR UPDATE"
_CHARGE_USER = (
    "UPDATE users SET credits_nanos = credits_nanos - :from_credits, "
    "ref_credits_nanos = ref_credits_nanos - :from_ref, held_nanos = held_nanos - :charged, "
    "tokens_used = tokens_used + :total, monthly_tokens_used = monthly_tokens_used + :total, "
    "total_input_tokens = total_input_tokens + :input, total_output_tokens = total_output_tokens + :output, "
    "total_cache_write_tokens = total_cache_write_tokens + :cache_write, "
    "total_cache_hit_tokens = total_cache_hit_tokens + :cache_hit WHERE id = :user_id"
)
_INSERT_LEDGER_PG = (
    "INSERT INTO ledger_entries (user_id, kind, credits_delta_nanos, ref_credits_delta_nanos, reason, actor, "
    "request_id, created_at) SELECT u, 'charge', c, r, reason, 'proxy', rid, t FROM unnest("
    "CAST(:users AS integer[]), CAST(:credits AS bigint[]), CAST(:refs AS bigint[]), "
    "CAST(:reasons AS text[]), "
    "CAST(:request_ids AS text[]), CAST(:times AS timestamp[])) AS x(u, c, r, reason, rid, t)"
)
_INSERT_LOGS_PG = (
    "INSERT INTO request_logs (request_id, user_id, user_key_id, friend_key_id, is_friend_key_request, "
    "factory_key_id, model, input_tokens, output_tokens, cache_write_tokens, cache_hit_tokens, "
    "credits_cost_nanos, status_code, latency_ms, is_success, is_byok, is_stream, error_type, created_at) "
    "SELECT rid, u, k, NULL, FALSE, f, m, i, o, cw, ch, c, s, l, ok, FALSE, st, e, t FROM unnest("
    "CAST(:request_ids AS text[]), CAST(:users AS integer[]), CAST(:keys AS integer[]), "
    "CAST(:factory_keys AS integer[]), CAST(:models AS text[]), CAST(:inputs AS bigint[]), "
    "CAST(:outputs AS bigint[]), CAST(:cache_writes AS bigint[]), CAST(:cache_hits AS bigint[]), "
    "CAST(:costs AS bigint[]), CAST(:statuses AS integer[]), CAST(:latencies AS integer[]), "
    "CAST(:successes AS boolean[]), CAST(:streams AS boolean[]), CAST(:errors AS text[]), "
    "CAST(:times AS timestamp[])) AS x(rid, u, k, f, m, i, o, cw, ch, c, s, l, ok, st, e, t)"
)

# A batch on one lease (the common case: one heavy user, or one request at a time) as one autocommit
# statement: the lease spent (locked first, as everywhere), the user locked as it is then, each charge taken
# from credits then refCredits in the batch's order (the running sum of the charges before it), the user's
# balances and tokens, the ledger entries and the request logs. No row when the lease is gone (nothing
# written). Returns the user's balances before the charges, from which `split_charge` gives each outcome.
_SETTLE_ONE_LEASE_PG = (
    "WITH spent AS (UPDATE credit_leases SET amount_nanos = amount_nanos - :charged, "
    "expires_at = :expires_at WHERE id = :lease_id AND instance_id = :instance_id RETURNING user_id), "
    "locked AS (SELECT u.id, u.credits_nanos, u.ref_credits_nanos FROM users u "
    "JOIN spent ON u.id = spent.user_id FOR UPDATE OF u), "
    "items AS (SELECT * FROM json_to_recordset(CAST(:items AS json)) AS x(rid text, k integer, f integer, "
    "m text, i bigint, o bigint, cw bigint, ch bigint, c bigint, s integer, l integer, ok boolean, "
    "st boolean, e text, t timestamp, reason text, n integer)), "
    "split AS (SELECT items.*, locked.id AS u, LEAST(items.c, GREATEST(GREATEST(locked.credits_nanos, 0) "
    "- (sum(items.c) OVER (ORDER BY items.n) - items.c), 0)) AS fc FROM items, locked), "
    "charged AS (UPDATE users SET credits_nanos = credits_nanos - (SELECT sum(fc) FROM split), "
    "ref_credits_nanos = ref_credits_nanos - (SELECT sum(c - fc) FROM split), "
    "held_nanos = held_nanos - :charged, "
    "tokens_used = tokens_used + :total, monthly_tokens_used = monthly_tokens_used + :total, "
    "total_input_tokens = total_input_tokens + :input, total_output_tokens = total_output_tokens + :output, "
    "total_cache_write_tokens = total_cache_write_tokens + :cache_write, "
    "total_cache_hit_tokens = total_cache_hit_tokens + :cache_hit "
    "WHERE id = (SELECT id FROM locked) RETURNING id), "
    "ledger AS (INSERT INTO ledger_entries (user_id, kind, credits_delta_nanos, ref_credits_delta_nanos, "
    "reason, actor, request_id, created_at) "
    "SELECT u, 'charge', -fc, -(c - fc), reason, 'proxy', rid, t FROM split WHERE c > 0 ORDER BY n), "
    "logs AS (INSERT INTO request_logs (request_id, user_id, user_key_id, friend_key_id, "
    "is_friend_key_request, factory_key_id, model, input_tokens, output_tokens, cache_write_tokens, "
    "cache_hit_tokens, credits_cost_nanos, status_code, latency_ms, is_success, is_byok, is_stream, "
    "error_type, created_at) "
    "SELECT rid, u, k, NULL, FALSE, f, m, i, o, cw, ch, c, s, l, ok, FALSE, st, e, t FROM split ORDER BY n) "
    "SELECT credits_nanos, ref_credits_nanos FROM locked"
)


@dataclass(frozen=True, slots=True)
class LeasedSettlement:
    """One request held in a lease, to settle: `charge` (≤ what its lease covers) is what it is charged."""

    lease_id: int
    held: HeldRequest
    cost: Money
    charge: Money
    usage: TokenUsage
    record: RequestRecord
    now: datetime


def settle_leased(
    instance_id: str, batch: Sequence[LeasedSettlement], expires_at: datetime, *, one_statement: bool
) -> Program[tuple[list[Charged], set[int]]]:
    """Settle a batch in one transaction: per lease (in user order), spend the charges from the lease and the
    user's held amount, take them from credits then refCredits in the batch's order, and add the tokens;
    then every ledger entry and request log (on PostgreSQL in one statement each).

    Returns each settlement's outcome (in `batch`'s order) and the leases found gone: their settlements
    were settled as late ones (`settlement.settle` of a hold already released: charging what is free).
    """
    outcomes: dict[int, Charged] = {}
    gone: set[int] = set()
    ledger: list[tuple[LeasedSettlement, int, int]] = []
    logs: list[tuple[LeasedSettlement, int]] = []
    by_lease: dict[int, list[int]] = {}
    for index, item in enumerate(batch):
        by_lease.setdefault(item.lease_id, []).append(index)
    for lease_id, indexes in sorted(
        by_lease.items(), key=lambda pair: (batch[pair[1][0]].held.user_id, pair[0])
    ):
        items = [batch[index] for index in indexes]
        user_id = items[0].held.user_id
        totals = _totals(items)
        spend = {"charged": totals["charged"], "lease_id": lease_id, "instance_id": instance_id,
                 "expires_at": expires_at}  # fmt: skip
        (spent,), *_ = yield Query(_SPEND_LEASE, spend, answer="count")
        if not spent:
            gone.add(lease_id)
            for index, item in zip(indexes, items, strict=True):
                late = settle(item.held, 0, item.cost, item.usage, item.record, item.now)
                outcomes[index] = yield from late
            continue
        (credits_nanos, ref_nanos, held_nanos), *_ = yield Query(
            _LOCK_USER_PG if one_statement else _USER_BALANCES, {"user_id": user_id}
        )
        credits, ref_credits = Money(int(credits_nanos)), Money(int(ref_nanos))
        # What no hold and no lease holds: a cost past what its lease covered is charged from it, up to
        # it, as an ordinary hold's overage is (the held amount goes down by the leases' part only).
        free = max(int(credits_nanos) + int(ref_nanos) - int(held_nanos), 0)
        from_credits = from_ref = 0
        for index, item in zip(indexes, items, strict=True):
            past_lease = min(item.cost.nanos - item.charge.nanos, free)
            free -= past_lease
            charge = item.charge + Money(past_lease) if past_lease > 0 else item.charge
            split = split_charge(charge, credits, ref_credits)
            credits, ref_credits = credits - split.from_credits, ref_credits - split.from_ref_credits
            from_credits += split.from_credits.nanos
            from_ref += split.from_ref_credits.nanos
            outcomes[index] = Charged(
                charge, split.from_credits, split.from_ref_credits, credits, ref_credits
            )
            if charge.nanos:
                ledger.append((item, split.from_credits.nanos, split.from_ref_credits.nanos))
            logs.append((item, charge.nanos))
        charge_row = {"from_credits": from_credits, "from_ref": from_ref, "user_id": user_id}
        yield Query(_CHARGE_USER, {**charge_row, **totals})
    if not one_statement:  # SQLite: a row at a time, each a cheap step (no arrays to bind)
        for item, from_credits, from_ref in ledger:
            yield Query(INSERT_LEDGER, _ledger_row(item, from_credits, from_ref))
        for item, charged in logs:
            yield Query(INSERT_LOG, log_row(item.held, item.usage, item.record, Money(charged), item.now))
    elif ledger:
        yield Query(
            _INSERT_LEDGER_PG,
            {
                "users": [item.held.user_id for item, _, _ in ledger],
                "credits": [-from_credits for _, from_credits, _ in ledger],
                "refs": [-from_ref for _, _, from_ref in ledger],
                "reasons": [f"request to {item.record.model_id}" for item, _, _ in ledger],
                "request_ids": [item.held.request_id for item, _, _ in ledger],
                "times": [_naive(item.now) for item, _, _ in ledger],
            },
        )
    if logs and one_statement:
        yield Query(_INSERT_LOGS_PG, _log_columns(logs))
    return [outcomes[index] for index in range(len(batch))], gone


def settle_one_lease(
    instance_id: str, batch: Sequence[LeasedSettlement], expires_at: datetime
) -> Program[list[Charged] | None]:
    """`settle_leased` for a batch whose settlements all come from one lease and each cost no more than the
    lease covered (`charge == cost`), as one statement: each
    settlement's outcome (in `batch`'s order), or None when the lease is gone (nothing written: settle the
    batch with `settle_leased`, which settles them as late ones)."""
    params = {
        "items": _items_json(batch),
        "lease_id": batch[0].lease_id,
        "instance_id": instance_id,
        "expires_at": expires_at,
        **_totals(batch),
    }
    rows = yield Query(_SETTLE_ONE_LEASE_PG, params, alone=True)
    if not rows:
        return None
    credits, ref_credits = Money(int(rows[0][0])), Money(int(rows[0][1]))
    outcomes = []
    for item in batch:
        split = split_charge(item.charge, credits, ref_credits)
        credits, ref_credits = credits - split.from_credits, ref_credits - split.from_ref_credits
        outcomes.append(
            Charged(item.charge, split.from_credits, split.from_ref_credits, credits, ref_credits)
        )
    return outcomes


def _items_json(batch: Sequence[LeasedSettlement]) -> str:
    """The batch as one JSON parameter (`json_to_recordset`): one string for the driver to send, where
    sixteen arrays cost it an `isinstance` check against abstract classes per element."""
    return orjson.dumps(
        [
            {
                "rid": item.held.request_id,
                "k": item.record.user_key_id,
                "f": item.record.factory_key_id,
                "m": item.record.model_id,
                "i": item.usage.input_tokens,
                "o": item.usage.output_tokens,
                "cw": item.usage.cache_write_tokens,
                "ch": item.usage.cache_hit_tokens,
                "c": item.charge.nanos,
                "s": item.record.status_code,
                "l": item.record.latency_ms,
                "ok": item.record.is_success,
                "st": item.record.is_stream,
                "e": item.record.error_type,
                "t": _naive(item.now),
                "reason": f"request to {item.record.model_id}",
                "n": n,
            }
            for n, item in enumerate(batch)
        ]
    ).decode()


def _totals(items: Sequence[LeasedSettlement]) -> dict[str, int]:
    """What a batch's settlements add up to: charged (nano-USD) and tokens, one pass."""
    charged = input_tokens = output = cache_write = cache_hit = 0
    for item in items:
        usage = item.usage
        charged += item.charge.nanos
        input_tokens += usage.input_tokens
        output += usage.output_tokens
        cache_write += usage.cache_write_tokens
        cache_hit += usage.cache_hit_tokens
    return {
        "charged": charged,
        "total": input_tokens + output + cache_write + cache_hit,
        "input": input_tokens,
        "output": output,
        "cache_write": cache_write,
        "cache_hit": cache_hit,
    }


def _ledger_row(item: LeasedSettlement, from_credits: int, from_ref: int) -> dict[str, object]:
    return {
        "user_id": item.held.user_id,
        "kind": CHARGE,
        "credits_delta": -from_credits,
        "ref_delta": -from_ref,
        "reason": f"request to {item.record.model_id}",
        "request_id": item.held.request_id,
        "now": item.now,
    }


def _log_columns(logs: list[tuple[LeasedSettlement, int]]) -> dict[str, object]:
    items = [item for item, _ in logs]
    return {
        "request_ids": [item.held.request_id for item in items],
        "users": [item.held.user_id for item in items],
        "keys": [item.record.user_key_id for item in items],
        "factory_keys": [item.record.factory_key_id for item in items],
        "models": [item.record.model_id for item in items],
        "inputs": [item.usage.input_tokens for item in items],
        "outputs": [item.usage.output_tokens for item in items],
        "cache_writes": [item.usage.cache_write_tokens for item in items],
        "cache_hits": [item.usage.cache_hit_tokens for item in items],
        "costs": [charge for _, charge in logs],
        "statuses": [item.record.status_code for item in items],
        "latencies": [item.record.latency_ms for item in items],
        "successes": [item.record.is_success for item in items],
        "streams": [item.record.is_stream for item in items],
        "errors": [item.record.error_type for item in items],
        "times": [_naive(item.now) for item in items],
    }


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)
