"""The SQL of credit leases (`trollllm.billing.leases`): open, grow, shrink, return and renew a lease
(`lease_settlement` settles the requests held in leases; `trollllm.billing.sweeper` returns the leases of
instances that died).

A lease is money moved into `users.held_nanos` with a `credit_leases` row saying which instance holds it, so
for every user `held_nanos` = Σ open holds + Σ leases (`trollllm reconcile` checks it). Every program
that changes a lease row changes `users.held_nanos` by the same amount in the same transaction (or the
same statement). Rows are locked lease first, then user, as the sweeper of holds does (hold, then user).

Each program runs on either runner: on PostgreSQL (`one_statement`: the runner's `data_modifying_ctes`) an
open and a return are each one statement; on SQLite, where this process's write lock
already serializes every transaction, each is a few plain statements in one transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from trollllm.storage.sqlprogram import Program, Query

LEASE_TTL = timedelta(minutes=2)
"""A lease not renewed for this long belongs to an instance that died: the sweeper returns it."""

# Reserve on the balance and write the lease row, as one statement (atomic on its own).
_OPEN_PG = (
    "WITH reserved AS (UPDATE users SET held_nanos = held_nanos + :amount WHERE id = :user_id AND is_active "
    "AND credits_nanos + ref_credits_nanos - held_nanos >= :amount RETURNING id) "
    "INSERT INTO credit_leases (instance_id, user_id, amount_nanos, expires_at) "
    "SELECT :instance_id, id, :amount, :expires_at FROM reserved RETURNING id"
)
_INSERT_LEASE = (
    "INSERT INTO credit_leases (instance_id, user_id, amount_nanos, expires_at) "
    "VALUES (:instance_id, :user_id, :amount, :expires_at)"
)
_LOCK_LEASE = (
    "SELECT user_id, amount_nanos FROM credit_leases WHERE id = :lease_id AND instance_id = :instance_id"
)
_LOCK_LEASE_PG = f"{_LOCK_LEASE} FOR UPDATE"
_GROW_LEASE = (
    "UPDATE credit_leases SET amount_nanos = amount_nanos + :amount, expires_at = :expires_at "
    "WHERE id = :lease_id AND instance_id = :instance_id"
)
_SHRINK_LEASE = (
    "UPDATE credit_leases SET amount_nanos = amount_nanos - :amount "
    "WHERE id = :lease_id AND instance_id = :instance_id"
)
_RESERVE = (
    "UPDATE users SET held_nanos = held_nanos + :amount WHERE id = :user_id AND is_active "
    "AND credits_nanos + ref_credits_nanos - held_nanos >= :amount"
)
# Delete the lease row and release its amount, as one statement (the user's update waits for the delete).
_RETURN_PG = (
    "WITH gone AS (DELETE FROM credit_leases WHERE id = :lease_id AND instance_id = :instance_id "
    "RETURNING user_id, amount_nanos) "
    "UPDATE users SET held_nanos = held_nanos - gone.amount_nanos FROM gone WHERE users.id = gone.user_id "
    "RETURNING gone.amount_nanos"
)
_DELETE_LEASE = "DELETE FROM credit_leases WHERE id = :lease_id"
_RELEASE = "UPDATE users SET held_nanos = held_nanos - :amount WHERE id = :user_id"
_RENEW = "UPDATE credit_leases SET expires_at = :expires_at WHERE instance_id = :instance_id"


class LeaseGone(Exception):
    """The lease row is no longer there (the sweeper returned it): nothing was written."""


def open_lease(
    instance_id: str, user_id: int, amount: int, expires_at: datetime, *, one_statement: bool
) -> Program[int | None]:
    """Reserve `amount` on the user's balance as a new lease of `instance_id`: its id, or None (too little
    is free, or the user is inactive; nothing written)."""
    row = {"amount": amount, "user_id": user_id, "instance_id": instance_id, "expires_at": expires_at}
    if one_statement:
        rows = yield Query(_OPEN_PG, row, alone=True)
        return int(rows[0][0]) if rows else None
    (reserved,), *_ = yield Query(_RESERVE, row, answer="count")
    if not reserved:
        return None
    (lease_id,), *_ = yield Query(_INSERT_LEASE, row, answer="new_id")
    return int(lease_id)


def grow_lease(
    instance_id: str, lease_id: int, user_id: int, amount: int, expires_at: datetime, *, one_statement: bool
) -> Program[bool]:
    """Add `amount` to a lease if that much of the balance is free: False when it is not (nothing written);
    `LeaseGone` when the lease was swept.

    The lease row is locked before the user's, as a batch of settlements does (else the two deadlock)."""
    row = {"amount": amount, "lease_id": lease_id, "instance_id": instance_id, "expires_at": expires_at}
    if not (yield Query(_LOCK_LEASE_PG if one_statement else _LOCK_LEASE, row)):
        raise LeaseGone()
    (reserved,), *_ = yield Query(_RESERVE, {"amount": amount, "user_id": user_id}, answer="count")
    if not reserved:
        return False
    yield Query(_GROW_LEASE, row)
    return True


def shrink_lease(instance_id: str, lease_id: int, user_id: int, amount: int) -> Program[None]:
    """Give `amount` of a lease (what its instance has free) back to the balance; `LeaseGone` when swept.

    The lease's update locks its row before the user's, as everywhere, and says whether the row is there."""
    row = {"amount": amount, "lease_id": lease_id, "instance_id": instance_id}
    (shrunk,), *_ = yield Query(_SHRINK_LEASE, row, answer="count")
    if not shrunk:
        raise LeaseGone()
    yield Query(_RELEASE, {"amount": amount, "user_id": user_id})


def return_lease(instance_id: str, lease_id: int, *, one_statement: bool) -> Program[int | None]:
    """Delete the lease and release its amount on the balance: the amount, or None (already swept)."""
    row = {"lease_id": lease_id, "instance_id": instance_id}
    if one_statement:
        rows = yield Query(_RETURN_PG, row, alone=True)
        return int(rows[0][0]) if rows else None
    rows = yield Query(_LOCK_LEASE, row)
    if not rows:
        return None
    (user_id, amount), *_ = rows
    yield Query(_DELETE_LEASE, row)
    yield Query(_RELEASE, {"amount": amount, "user_id": user_id})
    return int(amount)


def renew_leases(instance_id: str, expires_at: datetime) -> Program[None]:
    """Move the expiry of every lease of `instance_id`."""
    yield Query(_RENEW, {"instance_id": instance_id, "expires_at": expires_at}, alone=True)
