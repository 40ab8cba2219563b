"""With Redis down, the invalidation listener logs the outage once and its end once (issue 29, item 10),
as the rate limiter does, instead of an ERROR with a traceback at every retry."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

import pytest
from plan_helpers import redis_process
from redis.asyncio import Redis

from trollllm.invalidation import Invalidator


async def _until(condition: object, what: str) -> None:
    for _ in range(1000):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_redis_outage_is_logged_once_and_its_end_once_and_caches_are_dropped_when_it_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trollllm.invalidation")
    dropped: list[str] = []
    with redis_process(tmp_path) as server:
        await server.start()
        redis = Redis.from_url(server.url, socket_connect_timeout=0.2)
        invalidator = Invalidator(redis, f"trollllm-test:{uuid.uuid4().hex}:", retry_interval_s=0.02)
        invalidator.on("models", dropped.append)
        await invalidator.start()
        try:
            assert invalidator.connected
            server.stop()
            await _until(lambda: invalidator.failed_attempts >= 5, "five failed reconnections")
            assert not invalidator.connected
            await server.start()
            await _until(lambda: invalidator.connected, "the listener to subscribe again")
        finally:
            await invalidator.close()
            await redis.aclose()

    records = [r for r in caplog.records if r.name == "trollllm.invalidation"]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("ERROR", "lost the invalidation channel; caches expire by their TTL until it is back"),
        ("WARNING", "the invalidation channel is back; cached copies dropped"),
    ]
    assert all(r.exc_info is None for r in records), "no traceback for an outage"
    assert dropped == [""], "what other instances changed meanwhile was missed: every cache is dropped once"
