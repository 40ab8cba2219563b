"""Credit leases: holds served in memory, from slices of a balance reserved in the database.

The escrow pattern of telecom online charging. A heavy user's requests would otherwise queue on that user's
row: two committed writes each (hold, settlement), one after the other, each waiting for the one before to
reach the disk. Instead, an instance reserves a slice of the balance once (`users.held_nanos` += slice, a
`credit_leases` row naming the instance: `lease_programs.open_lease`), and then:

- a hold is taken from the slice in memory, no database round trip (`hold`); when the slice is short it is
  grown by another reservation (one user at a time per instance), and when the balance cannot give it
  `hold` answers False and the request takes an ordinary hold (`holds.place_hold`, which decides the 402);
- a settlement waits for the next batch: every settlement queued while one batch commits goes in the next
  one, in one transaction that takes each charge from the lease and the balance, credits first, and writes
  every ledger entry and request log (`lease_settlement.settle_leased`; one statement, `settle_one_lease`,
  when the batch is all on one lease, the usual case). The caller gets its outcome once the batch is
  committed, so a JSON answer leaves only with its charge on disk, as before;
- while a balance is taken down (a refund, an admin's deduction, a plan's expiry: `recalled`), the user's
  lease gives back what it has free and takes no new hold, so the balance is found as ordinary holds
  would leave it; an ordinary hold (a Friend Key's, say) that finds too little free has the lease give
  back what it has free too, and tries once more (`give_back`);
- a lease with nothing in flight for `IDLE_RETURN_S` is returned whole (`return_lease`), and every lease is
  renewed every `RENEWAL_S` while the instance lives. A killed instance's leases stop being renewed and the
  sweeper returns them after `LEASE_TTL` (`sweeper.release_expired_leases`).

Exactness: for every user `held_nanos` = Σ holds + Σ lease rows, and each lease row = what its instance
has free + the holds it serves + the charges queued for the next batch. A charge is never more than the
lease covers, so no balance goes below zero. A batch that fails is tried once more; failing again, its
settlements go to the outbox (replayed once per request id: late settlements, charging what is free then)
and its leases are retired: no new hold, and returned whole (what their rows say) once nothing is in
flight on them.

On SQLite (the embedded shape: one process, whose runner already commits the writes of one loop turn
together) the gain is a transaction per request instead: the hold's. A settlement that comes alone is
committed at once in its caller's turn, as one program that also keeps the lease's books, so they are kept
whether or not its caller still waits; settlements that come together go to the batches above.

Used only where a hold is money alone: no Friend Key cap, no usage window, no monthly token limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from trollllm.billing.holds import HeldRequest
from trollllm.billing.lease_programs import (
    LEASE_TTL,
    LeaseGone,
    grow_lease,
    open_lease,
    renew_leases,
    return_lease,
    shrink_lease,
)
from trollllm.billing.lease_settlement import LeasedSettlement, settle_leased, settle_one_lease
from trollllm.billing.records import RequestRecord
from trollllm.billing.settlement import Charged
from trollllm.clock import Clock
from trollllm.money import Money, TokenUsage
from trollllm.storage.sqlprogram import Program, ProgramRunner

logger = logging.getLogger("trollllm.billing.leases")

LEASED_HOLD_ID = -1
"""The `hold_id` of an admission held in a lease (no hold row)."""
SLICE_HOLDS = 32
"""A lease opened or grown for a hold reserves this many times the hold (less when the balance is short)."""
IDLE_RETURN_S = 1.0
"""A lease with nothing in flight for this long is returned to the balance."""
RENEWAL_S = 10.0
"""How often the leases of a live instance are renewed (well inside `LEASE_TTL`)."""


@dataclass(slots=True)
class _Lease:
    lease_id: int
    user_id: int
    amount: int  # the row's amount_nanos
    free: int  # what no hold and no queued charge uses
    active: int = 0  # holds served and not yet settled
    queued: int = 0  # charges waiting for their batch
    last_used: float = field(default_factory=time.monotonic)


class CreditLeases:
    """The leases of one instance (one app) and its batches of settlements."""

    def __init__(self, db: ProgramRunner, clock: Clock) -> None:
        self.instance_id = secrets.token_hex(8)
        self._db = db
        self._one_statement = db.data_modifying_ctes  # PostgreSQL: each lease program is one statement
        self._clock = clock
        self._leases: dict[int, _Lease] = {}  # by user id: the lease new holds are taken from
        self._taken: dict[str, _Lease] = {}  # by request id: the lease a request's hold came from
        self._growing: dict[int, asyncio.Lock] = {}
        self._recalled: dict[int, int] = {}  # by user id: how many balance changes are under way
        self._retired: list[_Lease] = []  # no new holds: returned once nothing is in flight on them
        self._queue: list[tuple[LeasedSettlement, _Lease, asyncio.Future[Charged]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._alone = True  # the last batch held one settlement: on SQLite, the next is settled at once
        self._settled_this_turn = False

    def _next_turn(self) -> None:
        self._settled_this_turn = False

    async def hold(self, held: HeldRequest) -> bool:
        """Take `held.amount` from this user's lease (opening or growing it first if needed): False when the
        balance cannot give it, nothing taken (the caller places an ordinary hold)."""
        amount = held.amount.nanos
        if held.user_id in self._recalled:
            return False
        lease = self._leases.get(held.user_id)
        while lease is None or lease.free < amount:  # others may take what a growth added while it ran
            lock = self._growing.setdefault(held.user_id, asyncio.Lock())
            async with lock:
                lease = await self._room_for(held.user_id, amount)
            if lease is None:
                return False
        lease.free -= amount
        lease.active += 1
        lease.last_used = time.monotonic()
        self._taken[held.request_id] = lease
        return True

    async def _room_for(self, user_id: int, amount: int) -> _Lease | None:
        if user_id in self._recalled:  # recalled while this hold waited for the growth before it
            return None
        lease = self._leases.get(user_id)
        if lease is not None and lease.free >= amount:
            return lease  # grown by the request that held the lock before
        expires_at = self._clock.now() + LEASE_TTL
        if lease is not None:
            for size in dict.fromkeys((max(amount * SLICE_HOLDS, lease.amount), amount - lease.free)):
                try:
                    grown = await self._db.write(
                        grow_lease(
                            self.instance_id,
                            lease.lease_id,
                            user_id,
                            size,
                            expires_at,
                            one_statement=self._one_statement,
                        )
                    )
                except LeaseGone:
                    self._leases.pop(user_id, None)
                    return await self._room_for(user_id, amount)
                if grown:
                    lease.amount += size
                    lease.free += size
                    return lease
            return None
        for size in dict.fromkeys((amount * SLICE_HOLDS, amount)):
            lease_id = await self._db.write(
                open_lease(self.instance_id, user_id, size, expires_at, one_statement=self._one_statement)
            )
            if lease_id is not None:
                lease = _Lease(lease_id, user_id, size, size)
                self._leases[user_id] = lease
                return lease
        return None

    async def settle(
        self, held: HeldRequest, cost: Money, usage: TokenUsage, record: RequestRecord
    ) -> Charged:
        """Charge `cost` for a request held in a lease (past its hold, from what the lease has free, then from
        what the balance has free: `settle_leased`) in the next batch, and release the rest of its hold into
        the lease. Returns once the batch committed; raises what the batch raised (nothing charged: the
        caller writes the settlement to the outbox).

        Cancelling the caller does not take the settlement out of its batch.
        """
        lease = self._taken.pop(held.request_id)
        charge = min(cost, held.amount)
        past_hold = min(cost.nanos - charge.nanos, lease.free)
        if past_hold > 0:  # the real cost passed the hold: the lease's free part covers what it can
            lease.free -= past_hold
            charge = charge + Money(past_hold)
        lease.free += held.amount.nanos - min(cost, held.amount).nanos
        lease.active -= 1
        lease.queued += charge.nanos
        lease.last_used = time.monotonic()
        item = LeasedSettlement(lease.lease_id, held, cost, charge, usage, record, self._clock.now())
        if self._alone and not self._settled_this_turn and not self._one_statement:
            # SQLite, settlements coming one at a time: the runner commits it now, in this turn.
            self._settled_this_turn = True
            asyncio.get_running_loop().call_soon(self._next_turn)
            program = self._settled_alone(item, lease)
            try:
                return await self._db.write(program)
            except Exception:
                if inspect.getgeneratorstate(program) == inspect.GEN_CREATED:  # never ran: its books are here
                    lease.queued -= item.charge.nanos
                    self._retire(lease)
                raise
        future: asyncio.Future[Charged] = asyncio.get_running_loop().create_future()
        self._queue.append((item, lease, future))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush(), name="trollllm-lease-settlements")
        return await future  # cancelled with its caller; the batch resolves only futures still waiting

    def _settled_alone(self, item: LeasedSettlement, lease: _Lease) -> Program[Charged]:
        """`settle_leased` of one settlement, keeping the lease's books inside the program: they are kept
        when the runner runs it, whether or not its caller is still waiting. (Should the COMMIT after it
        fail, the lease's row keeps the charge it did not take, and the lease returns it with the rest.)"""
        expires_at = self._clock.now() + LEASE_TTL
        try:
            (charged,), gone = yield from settle_leased(
                self.instance_id, [item], expires_at, one_statement=False
            )
        except BaseException:
            lease.queued -= item.charge.nanos
            self._retire(lease)
            raise
        lease.queued -= item.charge.nanos
        if gone:
            self._forget(lease)
        else:
            lease.amount -= item.charge.nanos
        return charged

    async def _flush(self) -> None:
        """Commit batches until the queue is empty: each holds every settlement queued during the last."""
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                self._alone = len(batch) <= 1
                try:
                    outcomes, gone = await self._settle(batch)
                except Exception as exc:
                    # Whether the database wrote the batch is not known for sure (an error after COMMIT):
                    # its leases take no new hold and go back whole (their rows say what is left) once idle.
                    for item, lease, future in batch:
                        lease.queued -= item.charge.nanos
                        self._retire(lease)
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (item, lease, future), charged in zip(batch, outcomes, strict=True):
                    lease.queued -= item.charge.nanos
                    if lease.lease_id in gone:
                        self._forget(lease)
                    else:
                        lease.amount -= item.charge.nanos
                    if not future.done():
                        future.set_result(charged)
        finally:
            self._flushing = None

    async def _settle(
        self, batch: list[tuple[LeasedSettlement, _Lease, asyncio.Future[Charged]]]
    ) -> tuple[list[Charged], set[int]]:
        """One batch's transaction, tried a second time if the first rolled back (e.g. a deadlock with a
        transaction locking several users in another order): only a second failure reaches the outbox."""
        items = [item for item, _, _ in batch]
        try:
            return await self._settle_items(items)
        except Exception:
            logger.warning("a batch of settlements failed; trying it once more", exc_info=True)
            return await self._settle_items(items)

    async def _settle_items(self, items: list[LeasedSettlement]) -> tuple[list[Charged], set[int]]:
        expires_at = self._clock.now() + LEASE_TTL
        # One statement, one round trip: one lease, and no cost past what it covered (see settle_leased).
        if self._one_statement and all(
            item.lease_id == items[0].lease_id and item.charge == item.cost for item in items
        ):
            outcomes = await self._db.write(settle_one_lease(self.instance_id, items, expires_at))
            if outcomes is not None:
                return outcomes, set()
        return await self._db.write(
            settle_leased(self.instance_id, items, expires_at, one_statement=self._one_statement)
        )

    def _forget(self, lease: _Lease) -> None:
        if self._leases.get(lease.user_id) is lease:
            del self._leases[lease.user_id]

    def _retire(self, lease: _Lease) -> None:
        if self._leases.get(lease.user_id) is lease:
            del self._leases[lease.user_id]
            self._retired.append(lease)

    async def tend(self) -> None:
        """Return the idle leases and renew the others, until cancelled (a task of the app's lifespan)."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(IDLE_RETURN_S / 2)
            try:
                await self.return_idle(IDLE_RETURN_S)
                if time.monotonic() - renewed >= RENEWAL_S and (self._leases or self._retired):
                    await self._db.write(renew_leases(self.instance_id, self._clock.now() + LEASE_TTL))
                    renewed = time.monotonic()
            except Exception:
                logger.exception("could not return or renew the credit leases")

    async def return_idle(self, idle_s: float = 0.0) -> int:
        """Return every lease with nothing in flight for `idle_s`; how many were returned."""
        now = time.monotonic()
        idle = [
            lease
            for lease in self._leases.values()
            if lease.active == 0 and lease.queued == 0 and now - lease.last_used >= idle_s
        ]
        retired = [lease for lease in self._retired if lease.active == 0 and lease.queued == 0]
        self._retired = [lease for lease in self._retired if lease not in retired]
        idle += retired
        for lease in idle:  # all at once: a hold arriving while one is returned opens a new lease
            self._forget(lease)
            lock = self._growing.get(lease.user_id)
            if lock is not None and not lock.locked():
                del self._growing[lease.user_id]
        for lease in idle:
            try:
                await self._db.write(
                    return_lease(self.instance_id, lease.lease_id, one_statement=self._one_statement)
                )
            except Exception:
                logger.exception("could not return a credit lease; the sweeper returns it once it expires")
        return len(idle)

    async def close(self) -> None:
        """Let the last batch commit, then return every lease with nothing in flight (shutdown)."""
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing
        await self.return_idle()

    @contextlib.asynccontextmanager
    async def recalled(self, user_ids: Iterable[int]) -> AsyncIterator[None]:
        """While these users' balances are taken down (enter before the transaction: on SQLite it holds
        the write lock the lease programs need): their leases here give back what they have free, and
        their new holds are ordinary ones, which the transaction sees as held."""
        users = sorted(set(user_ids))
        for user_id in users:
            self._recalled[user_id] = self._recalled.get(user_id, 0) + 1
        try:
            for user_id in users:
                await self.give_back(user_id)
            yield
        finally:
            for user_id in users:
                self._recalled[user_id] -= 1
                if not self._recalled[user_id]:
                    del self._recalled[user_id]

    async def give_back(self, user_id: int) -> bool:
        """Give what this instance's lease of the user has free back to the balance (the lease stays, and
        grows again when a hold needs it): True when it had anything free. For an ordinary hold that found
        too little free, and before a balance is taken down."""
        async with self._growing.setdefault(user_id, asyncio.Lock()):  # after a growth under way
            lease = self._leases.get(user_id)
            if lease is None or lease.free <= 0:
                return False
            free, lease.free = lease.free, 0
            lease.amount -= free
            try:
                await self._db.write(shrink_lease(self.instance_id, lease.lease_id, user_id, free))
            except LeaseGone:  # swept: its whole amount is back already
                self._forget(lease)
            except BaseException:  # whether it was written is not known: its row says, once it is returned
                self._retire(lease)
                raise
            return True

    def outstanding(self) -> dict[int, int]:
        """Each user's lease of this instance: user id -> the lease row's amount (nano-USD)."""
        return {user_id: lease.amount for user_id, lease in self._leases.items()}


def leases_recalled(
    leases: CreditLeases | None, user_ids: Iterable[int]
) -> AbstractAsyncContextManager[None]:
    """`CreditLeases.recalled` where leases are on; nothing to do where they are off."""
    return leases.recalled(user_ids) if leases is not None else contextlib.nullcontext()
