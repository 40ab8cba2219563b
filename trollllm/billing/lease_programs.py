"""The SQL of credit leases (`trollllm.billing.leases`): open, grow, return and renew a lease, settle a batch
of requests held in leases in one transaction, and sweep the leases of instances that died.

A lease is money moved into `users.held_nanos` with a `credit_leases` row saying which instance holds it, so
for every user `held_nanos` = Σ open holds + Σ leases (`trollllm reconcile` checks it). Every program
that changes a lease row changes `users.held_nanos` by the same amount in the same transaction (or the
same statement). Rows are locked lease first, then user, as the sweeper of holds does (hold, then user).

PostgreSQL only (the scaled shape's runner): data-modifying CTEs and arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.accounts.tables import User
from trollllm.billing.holds import HeldRequest
from trollllm.billing.records import RequestRecord
from trollllm.billing.settlement import Charged, settle
from trollllm.billing.tables import CreditLease
from trollllm.db import transaction
from trollllm.money import Money, TokenUsage, split_charge
from trollllm.storage.sqlprogram import Program, Query

logger = logging.getLogger("trollllm.billing.leases")

LEASE_TTL = timedelta(minutes=2)
"""A lease not renewed for this long belongs to an instance that died: the sweeper returns it."""

# Reserve on the balance and write the lease row, as one statement (atomic on its own).
_OPEN_PG = (
    "WITH reserved AS (UPDATE users SET held_nanos = held_nanos + :amount WHERE id = :user_id AND is_active "
    "AND credits_nanos + ref_credits_nanos - held_nanos >= :amount RETURNING id) "
    "INSERT INTO credit_leases (instance_id, user_id, amount_nanos, expires_at) "
    "SELECT :instance_id, id, :amount, :expires_at FROM reserved RETURNING id"
)
_LOCK_LEASE_PG = "SELECT id FROM credit_leases WHERE id = :lease_id AND instance_id = :instance_id FOR UPDATE"
_GROW_LEASE_PG = (
    "UPDATE credit_leases SET amount_nanos = amount_nanos + :amount, expires_at = :expires_at "
    "WHERE id = :lease_id AND instance_id = :instance_id RETURNING id"
)
_RESERVE_PG = (
    "UPDATE users SET held_nanos = held_nanos + :amount WHERE id = :user_id AND is_active "
    "AND credits_nanos + ref_credits_nanos - held_nanos >= :amount RETURNING id"
)
# Delete the lease row and release its amount, as one statement (the user's update waits for the delete).
_RETURN_PG = (
    "WITH gone AS (DELETE FROM credit_leases WHERE id = :lease_id AND instance_id = :instance_id "
    "RETURNING user_id, amount_nanos) "
    "UPDATE users SET held_nanos = held_nanos - gone.amount_nanos FROM gone WHERE users.id = gone.user_id "
    "RETURNING gone.amount_nanos"
)
_RENEW_PG = "UPDATE credit_leases SET expires_at = :expires_at WHERE instance_id = :instance_id"
_SPEND_LEASE_PG = (
    "UPDATE credit_leases SET amount_nanos = amount_nanos - :charged, expires_at = :expires_at "
    "WHERE id = :lease_id AND instance_id = :instance_id RETURNING id"
)
_LOCK_USER_PG = "SELECT credits_nanos, ref_credits_nanos FROM users WHERE id = :user_id FOR UPDATE"
_CHARGE_USER_PG = (
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


class LeaseGone(Exception):
    """The lease row is no longer there (the sweeper returned it): nothing was written."""


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


def open_lease(instance_id: str, user_id: int, amount: int, expires_at: datetime) -> Program[int | None]:
    """Reserve `amount` on the user's balance as a new lease of `instance_id`: its id, or None (too little
    is free, or the user is inactive; nothing written)."""
    row = {
        "amount": amount,
        "user_id": user_id,
        "instance_id": instance_id,
        "expires_at": expires_at,
    }
    rows = yield Query(_OPEN_PG, row, alone=True)
    return int(rows[0][0]) if rows else None


def grow_lease(
    instance_id: str, lease_id: int, user_id: int, amount: int, expires_at: datetime
) -> Program[bool]:
    """Add `amount` to a lease if that much of the balance is free: False when it is not (nothing written);
    `LeaseGone` when the lease was swept.

    The lease row is locked before the user's, as a batch of settlements does (else the two deadlock)."""
    row = {"amount": amount, "lease_id": lease_id, "instance_id": instance_id, "expires_at": expires_at}
    if not (yield Query(_LOCK_LEASE_PG, row)):
        raise LeaseGone()
    if not (yield Query(_RESERVE_PG, {"amount": amount, "user_id": user_id})):
        return False
    yield Query(_GROW_LEASE_PG, row)
    return True


def return_lease(instance_id: str, lease_id: int) -> Program[int | None]:
    """Delete the lease and release its amount on the balance: the amount, or None (already swept)."""
    rows = yield Query(_RETURN_PG, {"lease_id": lease_id, "instance_id": instance_id}, alone=True)
    return int(rows[0][0]) if rows else None


def renew_leases(instance_id: str, expires_at: datetime) -> Program[None]:
    """Move the expiry of every lease of `instance_id`."""
    yield Query(_RENEW_PG, {"instance_id": instance_id, "expires_at": expires_at}, alone=True)


def settle_leased(
    instance_id: str, batch: Sequence[LeasedSettlement], expires_at: datetime
) -> Program[tuple[list[Charged], set[int]]]:
    """Settle a batch in one transaction: per lease (in user order), spend the charges from the lease and the
    user's held amount, take them from credits then refCredits in the batch's order, and add the tokens;
    then every ledger entry and request log in one statement each.

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
        charged_total = sum(item.charge.nanos for item in items)
        spend = {"charged": charged_total, "lease_id": lease_id, "instance_id": instance_id,
                 "expires_at": expires_at}  # fmt: skip
        if not (yield Query(_SPEND_LEASE_PG, spend)):
            gone.add(lease_id)
            for index, item in zip(indexes, items, strict=True):
                late = settle(item.held, 0, item.cost, item.usage, item.record, item.now)
                outcomes[index] = yield from late
            continue
        (credits_nanos, ref_nanos), *_ = yield Query(_LOCK_USER_PG, {"user_id": user_id})
        credits, ref_credits = Money(int(credits_nanos)), Money(int(ref_nanos))
        from_credits = from_ref = 0
        for index, item in zip(indexes, items, strict=True):
            split = split_charge(item.charge, credits, ref_credits)
            credits, ref_credits = credits - split.from_credits, ref_credits - split.from_ref_credits
            from_credits += split.from_credits.nanos
            from_ref += split.from_ref_credits.nanos
            outcomes[index] = Charged(
                item.charge, split.from_credits, split.from_ref_credits, credits, ref_credits
            )
            if item.charge.nanos:
                ledger.append((item, split.from_credits.nanos, split.from_ref_credits.nanos))
            logs.append((item, item.charge.nanos))
        yield Query(
            _CHARGE_USER_PG,
            {
                "from_credits": from_credits,
                "from_ref": from_ref,
                "charged": charged_total,
                "total": sum(item.usage.total for item in items),
                "input": sum(item.usage.input_tokens for item in items),
                "output": sum(item.usage.output_tokens for item in items),
                "cache_write": sum(item.usage.cache_write_tokens for item in items),
                "cache_hit": sum(item.usage.cache_hit_tokens for item in items),
                "user_id": user_id,
            },
        )
    if ledger:
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
    if logs:
        yield Query(_INSERT_LOGS_PG, _log_columns(logs))
    return [outcomes[index] for index in range(len(batch))], gone


def settle_one_lease(
    instance_id: str, batch: Sequence[LeasedSettlement], expires_at: datetime
) -> Program[list[Charged] | None]:
    """`settle_leased` for a batch whose settlements all come from one lease, as one statement: each
    settlement's outcome (in `batch`'s order), or None when the lease is gone (nothing written: settle the
    batch with `settle_leased`, which settles them as late ones)."""
    params = {
        "items": _items_json(batch),
        "charged": sum(item.charge.nanos for item in batch),
        "lease_id": batch[0].lease_id,
        "instance_id": instance_id,
        "expires_at": expires_at,
        "total": sum(item.usage.total for item in batch),
        "input": sum(item.usage.input_tokens for item in batch),
        "output": sum(item.usage.output_tokens for item in batch),
        "cache_write": sum(item.usage.cache_write_tokens for item in batch),
        "cache_hit": sum(item.usage.cache_hit_tokens for item in batch),
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


async def release_expired_leases(sessions: async_sessionmaker[AsyncSession], now: datetime) -> int:
    """Return every lease with `expires_at < now` (its instance died, or lost the database for longer than
    `LEASE_TTL`) to its user's balance, each in one short transaction; how many this call returned.

    Safe beside itself and the leases' owners: the delete decides, so a lease is returned once.
    """
    async with sessions() as session:
        expired = (
            await session.scalars(
                select(CreditLease.id).where(CreditLease.expires_at < now).order_by(CreditLease.id)
            )
        ).all()
    returned = 0
    for lease_id in expired:
        async with transaction(sessions) as session:
            row = (
                await session.execute(
                    delete(CreditLease)
                    .where(CreditLease.id == lease_id, CreditLease.expires_at < now)
                    .returning(CreditLease.user_id, CreditLease.amount_nanos, CreditLease.instance_id)
                    .execution_options(synchronize_session=False)
                )
            ).one_or_none()
            if row is None:
                continue
            user_id, amount, instance_id = row
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(held_nanos=User.held_nanos - amount)
                .execution_options(synchronize_session=False)
            )
        returned += 1
        logger.warning(
            "returned the credit lease of an instance that stopped renewing it",
            extra={"user_id": user_id, "amount": Money(amount).format_cost(), "instance_id": instance_id},
        )
    return returned
