"""The pool's factory keys in memory and the marks it puts on them: turns, cooldowns, disables, proxy errors.

Keys are loaded from the database (decrypted into memory) and reloaded after `invalidate()` or every
`RELOAD_INTERVAL_S`; marks this process made are kept across reloads until the database shows them (a write
may lag or fail), and written there in the background (`keystatus`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.clock import Clock
from trollllm.crypto import KeyBox
from trollllm.errors import UpstreamUnavailable
from trollllm.upstream.keyring import PoolKey, load_keys
from trollllm.upstream.keystatus import KeyStatusWriter

logger = logging.getLogger("trollllm.upstream")

MAX_ATTEMPTS = 3
RELOAD_INTERVAL_S = 30.0


class KeyRotation:
    """Which factory keys a request may use, in which order, and what happened to them."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        keybox: KeyBox,
        clock: Clock,
        writer: KeyStatusWriter,
    ) -> None:
        self._sessions = sessions
        self._keybox = keybox
        self._clock = clock
        self._writer = writer
        self._lock = asyncio.Lock()
        self._keys: dict[str, list[PoolKey]] | None = None
        self._stale = True
        self._reload_at = 0.0
        self._turns: dict[str, int] = {}
        # Marks made here, kept across reloads until the database shows them (a write may lag or fail).
        self._cooldowns: dict[int, float] = {}
        self._disabled: set[int] = set()
        self._proxy_errors: set[int] = set()  # proxies whose row may hold a last error to clear

    def forget(self) -> None:
        """Drop the decrypted keys (the pool is closing)."""
        self._keys = None

    def invalidate(self) -> None:
        """Factory keys or proxies changed: reload them from the database on the next `send`.

        The admin's change wins over this pool's own cooldown and disable marks.
        """
        self._stale = True
        self._cooldowns.clear()
        self._disabled.clear()

    # -- keys ----------------------------------------------------------------------------------------

    async def keys_of(self, provider: str) -> list[PoolKey]:
        keys = self._keys
        if keys is None or self._stale or self._clock.monotonic() >= self._reload_at:
            keys = await self._reload()
        return keys.get(provider, [])

    async def _reload(self) -> dict[str, list[PoolKey]]:
        async with self._lock:
            monotonic = self._clock.monotonic()
            if self._keys is not None and not self._stale and monotonic < self._reload_at:
                return self._keys  # another request reloaded meanwhile
            self._stale = False
            try:
                loaded = await load_keys(
                    self._sessions, self._keybox, now=self._clock.now(), monotonic=monotonic
                )
            except (SQLAlchemyError, OSError) as exc:
                if self._keys is None:
                    raise UpstreamUnavailable("Upstream keys cannot be loaded right now") from exc
                logger.exception("could not reload factory keys; keeping the ones in memory")
                self._reload_at = monotonic + 1.0
                return self._keys
            seen: set[int] = set()
            for provider_keys in loaded.by_provider.values():
                for key in provider_keys:
                    seen.add(key.id)
                    key.cooling_until = max(key.cooling_until, self._cooldowns.get(key.id, 0.0))
                    key.disabled = key.id in self._disabled
            self._disabled &= seen  # the rest: the database shows them disabled (or deleted) now
            self._cooldowns = {i: until for i, until in self._cooldowns.items() if until > monotonic}
            self._proxy_errors |= loaded.proxy_errors
            for key_id, problem in loaded.flagged.items():
                self._writer.flag(key_id, problem)
            self._keys = loaded.by_provider
            self._reload_at = monotonic + RELOAD_INTERVAL_S
            return self._keys

    def usable(self, key: PoolKey) -> bool:
        return not key.disabled and key.cooling_until <= self._clock.monotonic()

    def candidates(self, provider: str, keys: list[PoolKey], prefer: int | None = None) -> list[PoolKey]:
        """Up to `MAX_ATTEMPTS` usable keys: the preferred one first when it is usable (it takes no turn),
        else starting at this provider's next turn."""
        usable = [key for key in keys if self.usable(key)]
        if not usable:
            return []
        preferred = [key for key in usable if key.id == prefer] if prefer is not None else []
        if preferred:
            rest = [key for key in usable if key.id != prefer]
            return (preferred + rest)[:MAX_ATTEMPTS]
        turn = self._turns.get(provider, 0)
        self._turns[provider] = turn + 1
        start = turn % len(usable)
        return (usable[start:] + usable[:start])[:MAX_ATTEMPTS]

    def unavailable(self, keys: list[PoolKey]) -> UpstreamUnavailable:
        """503, with `Retry-After` when a key comes back from its cooldown."""
        now = self._clock.monotonic()
        waits = [key.cooling_until - now for key in keys if not key.disabled and key.cooling_until > now]
        if not waits:
            return UpstreamUnavailable()
        return UpstreamUnavailable(headers={"Retry-After": str(max(1, math.ceil(min(waits))))})

    # -- marks ---------------------------------------------------------------------------------------

    def cool_down(self, key: PoolKey, seconds: float, reason: str) -> None:
        until = self._clock.monotonic() + seconds
        key.cooling_until = max(key.cooling_until, until)
        key.db_cooling = True
        self._cooldowns[key.id] = key.cooling_until
        self._writer.cool_down(key.id, self._clock.now() + timedelta(seconds=seconds), reason)
        logger.warning("factory key %d cooling down for %g s: %s", key.id, seconds, reason)

    def recovered(self, key: PoolKey) -> None:
        """A key the database shows cooling answered again: write it back `healthy`."""
        if key.db_cooling:
            key.db_cooling = False
            self._writer.recover(key.id, self._clock.now())

    def find(self, factory_key_id: int) -> PoolKey | None:
        """The loaded key with this id, if any."""
        for provider_keys in (self._keys or {}).values():
            for key in provider_keys:
                if key.id == factory_key_id:
                    return key
        return None

    def proxy_failed(self, key: PoolKey, error: str) -> None:
        """The key's outbound proxy refused the request itself: record it on the proxy row."""
        if key.proxy_id is None:
            return
        self._proxy_errors.add(key.proxy_id)
        self._writer.proxy_failed(key.proxy_id, error, self._clock.now())
        logger.warning("outbound proxy %d: %s (factory key %d)", key.proxy_id, error, key.id)

    def proxy_passed(self, key: PoolKey) -> None:
        """A request went through the key's proxy: clear the proxy's last error, if it has one."""
        if key.proxy_id is not None and key.proxy_id in self._proxy_errors:
            self._proxy_errors.discard(key.proxy_id)
            self._writer.proxy_passed(key.proxy_id)

    def disable(self, key: PoolKey, reason: str) -> None:
        key.disabled = True
        self._disabled.add(key.id)
        self._writer.disable(key.id, reason)
        logger.error("factory key %d disabled: %s", key.id, reason)
