"""Which factory key served a conversation's last turn, so the next turn goes to it while it is healthy
(SPEC §6: prompt caches and encrypted reasoning belong to one upstream account).

A conversation is named by its caller, its model and a hint the client sends: a `prompt_cache_key`, the
`session-id` header (Codex CLI), Anthropic `metadata.user_id` (Claude Code), or a chat `user`. The
remembered key is a preference, never a requirement: the pool tries it first while it is usable and
falls back to its usual turns (`UpstreamPool.send(prefer=…)`). Kept in Redis when the gateway has one
(every instance sends the conversation to the same key), else in this process.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict
from typing import TYPE_CHECKING

from trollllm.clock import Clock
from trollllm.redis_failures import redis_failures

if TYPE_CHECKING:
    from redis.asyncio import Redis

TTL_S = 3600
"""How long a conversation keeps its key after its last turn (a provider's prompt cache lasts less)."""
MAX_IN_PROCESS = 100_000
_PREFIX = "trollllm:affinity:"


def conversation_name(user_id: int, model_id: str, hint: str) -> str:
    """The conversation's name: a digest, so no client text is kept or used as a Redis key."""
    return hashlib.sha256(f"{user_id}\0{model_id}\0{hint}".encode()).hexdigest()[:32]


class KeyAffinity:
    """Conversation -> the factory key that served its last turn."""

    def __init__(self, clock: Clock, redis: Redis | None = None, prefix: str = _PREFIX) -> None:
        self._clock = clock
        self._redis = redis
        self._prefix = prefix
        self._local: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._redis_errors = redis_failures(redis)

    async def key_of(self, conversation: str) -> int | None:
        """The key that served the conversation's last turn, if it is remembered."""
        if self._redis is not None:
            try:
                value = await self._redis.get(self._prefix + conversation)
            except self._redis_errors:
                value = None  # a preference only: without Redis the usual turns apply
            return int(value) if value is not None else None
        entry = self._local.get(conversation)
        if entry is None or entry[1] <= self._clock.monotonic():
            return None
        return entry[0]

    async def remember(self, conversation: str, key_id: int) -> None:
        """The conversation's last turn was served by `key_id`."""
        if self._redis is not None:
            # A preference only: when Redis fails, the next turn takes the usual turns.
            with contextlib.suppress(*self._redis_errors):
                await self._redis.set(self._prefix + conversation, key_id, ex=TTL_S)
            return
        self._local[conversation] = (key_id, self._clock.monotonic() + TTL_S)
        self._local.move_to_end(conversation)
        while len(self._local) > MAX_IN_PROCESS:
            self._local.popitem(last=False)
