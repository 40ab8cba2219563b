"""Cache invalidation across instances: a change on one instance drops the cached copies on every other.

Handlers run at once in this process; with Redis configured the topic is also published on one channel
that every instance listens to. If Redis is unreachable, each cache's own short TTL bounds staleness; the
outage is logged once (error) and its end once (warning), as the rate limiter does, and when the channel is
back every cache is dropped once (what other instances changed meanwhile was never heard).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from trollllm.redis_failures import redis_failures

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger("trollllm.invalidation")

Handler = Callable[[str], None]


class Invalidator:
    """Publishes and receives invalidations by topic (`models`, `upstream`, `friend_keys`, …)."""

    def __init__(self, redis: Redis | None, prefix: str, *, retry_interval_s: float = 1.0) -> None:
        self._redis = redis
        self._retry_interval_s = retry_interval_s
        self.connected = False
        """Whether this instance is subscribed to the channel now."""
        self.failed_attempts = 0
        """Connections to the channel that failed or broke, since start."""
        self._channel = f"{prefix}invalidate"
        self._origin = secrets.token_hex(8)
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._failures = redis_failures(redis, OSError)

    def on(self, topic: str, handler: Handler) -> None:
        """Call `handler(detail)` whenever `topic` is invalidated, here or on another instance."""
        self._handlers[topic].append(handler)

    async def publish(self, topic: str, detail: str = "") -> None:
        """Invalidate `topic` here at once and, with Redis, on every other instance."""
        self._dispatch(topic, detail)
        if self._redis is None:
            return
        message = orjson.dumps({"topic": topic, "detail": detail, "origin": self._origin})
        try:
            await self._redis.publish(self._channel, message)
        except self._failures:
            logger.error(
                "could not publish a cache invalidation; other instances catch up by TTL", exc_info=True
            )

    async def start(self) -> None:
        """Start listening for other instances' invalidations (no-op without Redis)."""
        if self._redis is not None:
            self._listener = asyncio.create_task(self._listen(self._redis))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._subscribed.wait(), timeout=2)

    async def close(self) -> None:
        """Stop listening."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    def _dispatch(self, topic: str, detail: str) -> None:
        for handler in self._handlers.get(topic, ()):
            handler(detail)

    async def _listen(self, redis: Redis) -> None:
        outage = False
        while True:
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    self.connected = True
                    self._subscribed.set()
                    if outage:
                        outage = False
                        logger.warning("the invalidation channel is back; cached copies dropped")
                        for topic in list(self._handlers):
                            self._dispatch(topic, "")
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._receive(message["data"])
            except self._failures as exc:
                self.connected = False
                self.failed_attempts += 1
                if not outage:
                    outage = True
                    logger.error(
                        "lost the invalidation channel; caches expire by their TTL until it is back",
                        extra={"error": f"{type(exc).__name__}: {exc}"},
                    )
                await asyncio.sleep(self._retry_interval_s)

    def _receive(self, data: bytes) -> None:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(payload, dict) and payload.get("origin") != self._origin:
            self._dispatch(str(payload.get("topic")), str(payload.get("detail", "")))
