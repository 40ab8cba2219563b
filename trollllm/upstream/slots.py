"""How many upstream connections each factory key may have in use at once, and the queue for more.

A request holds one of its key's slots from the moment it is sent until its reply is released (body read to
the end, failed or closed early): over HTTP/1.1 that is one busy connection. A request finding every slot
of its key taken waits in that key's queue, first come first served, but only up to a bound the caller
gives (`take`); a slot given back goes straight to the oldest waiter. The pool decides what a request does
when the bound passes (another key, or 503).
"""

from __future__ import annotations

import asyncio
from collections import deque


class ConnectionSlots:
    """At most `limit` slots in use per factory key (one event loop)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._busy: dict[int, int] = {}
        self._queues: dict[int, deque[asyncio.Future[None]]] = {}

    def busy(self, key_id: int) -> int:
        """Slots of this key in use now."""
        return self._busy.get(key_id, 0)

    def waiting(self, key_id: int) -> int:
        """Requests queued for a slot of this key now."""
        queue = self._queues.get(key_id)
        return sum(1 for waiter in queue if not waiter.done()) if queue else 0

    def has_free(self, key_id: int) -> bool:
        """Whether `try_take` would succeed now (a free slot and nobody queued before it)."""
        return self._busy.get(key_id, 0) < self.limit and not self._queues.get(key_id)

    def try_take(self, key_id: int) -> bool:
        """Take a free slot of this key now; False when there is none (nothing is taken)."""
        if not self.has_free(key_id):
            return False
        self._busy[key_id] = self._busy.get(key_id, 0) + 1
        return True

    async def take(self, key_id: int, timeout_s: float) -> bool:
        """Take a slot of this key, waiting in its queue up to `timeout_s`; False when the wait ran out."""
        if self.try_take(key_id):
            return True
        if timeout_s <= 0:
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(key_id, deque())
        queue.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except TimeoutError:
            return waiter.done() and not waiter.cancelled()  # handed a slot just as the time ran out
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give_back(key_id)  # pass on the slot this request was handed
            raise
        finally:
            self._forget(key_id, waiter)
        return True

    def give_back(self, key_id: int) -> None:
        """A request of this key is done with its connection: the slot goes to the oldest waiter, if any."""
        queue = self._queues.get(key_id)
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands: the busy count stays
                if not queue:
                    del self._queues[key_id]
                return
        if queue is not None:
            del self._queues[key_id]
        busy = self._busy.get(key_id, 0) - 1
        if busy > 0:
            self._busy[key_id] = busy
        else:
            self._busy.pop(key_id, None)

    def _forget(self, key_id: int, waiter: asyncio.Future[None]) -> None:
        queue = self._queues.get(key_id)
        if queue is None:
            return
        if waiter in queue:  # else already handed a slot (popped by `give_back`)
            queue.remove(waiter)
        if not queue:
            del self._queues[key_id]
