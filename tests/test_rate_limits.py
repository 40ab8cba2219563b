"""RPM on the proxy (SPEC §6): exact on both limiter backends and across instances, the real Retry-After,
OpenAI-style headers on every response, and a Redis that dies, comes back, or answers slowly."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import make_settings, require_service
from plan_helpers import Reply, burst, chat_body, edit_plan, redis_process, slow_proxy
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World, build_world, serve
from redis.asyncio import Redis
from services import REDIS_URL, redis_available

from trollllm.clock import ManualClock
from trollllm.mockupstream import MockUpstream
from trollllm.ratelimit.fallback import FallbackLimiter, RateLimitStatus, format_duration
from trollllm.ratelimit.limiter import LimitDecision, LimiterUnavailable, MemoryLimiter

RATE_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def rpm_world(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock, embedded_database_url: str
) -> AsyncIterator[World]:
    """The proxy world with the dev plan at 60 RPM, on the in-process limiter and on Redis."""
    overrides: dict[str, Any] = {}
    prefix = None
    if request.param == "redis":
        require_service("redis", redis_available())
        prefix = f"trollllm-test:{uuid.uuid4().hex}:"
        overrides = {"redis_url": REDIS_URL, "redis_key_prefix": prefix}
    settings = make_settings(tmp_path, embedded_database_url, **overrides)
    async with MockUpstream() as mock, serve(settings, clock) as served:
        world = await build_world(served[0], served[1], mock)
        await edit_plan(world, "dev", rpm=60)
        yield world
    if prefix is not None:
        client: Redis = Redis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=prefix + "*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


def error_type(reply: Reply | httpx.Response) -> str:
    body = orjson.loads(reply.body if isinstance(reply, Reply) else reply.content)
    kind: str = body["error"]["type"]
    return kind


async def test_a_burst_of_100_admits_exactly_60(rpm_world: World) -> None:
    replies = await burst([rpm_world.base_url], rpm_world.user.api_key, 100)
    statuses = [reply.status for reply in replies]
    assert statuses.count(200) == 60
    assert statuses.count(429) == 40
    refused = [reply for reply in replies if reply.status == 429]
    assert {error_type(reply) for reply in refused} == {"rate_limit_exceeded"}
    for reply in replies:
        assert reply.headers["x-ratelimit-limit-requests"] == "60"
    remaining = sorted(int(reply.headers["x-ratelimit-remaining-requests"]) for reply in replies)
    assert remaining[40:] == list(range(60)), "each admitted request saw one fewer left"
    for reply in refused:
        assert 59 <= int(reply.headers["Retry-After"]) <= 60


async def test_two_instances_sharing_redis_admit_exactly_60_between_them(
    tmp_path: Path, clock: ManualClock, embedded_database_url: str, redis_prefix: str
) -> None:
    first = make_settings(tmp_path, embedded_database_url, redis_url=REDIS_URL, redis_key_prefix=redis_prefix)
    second = first.model_copy(update={"instances": 2})
    async with MockUpstream() as mock, serve(first, clock) as one, serve(second, clock) as two:
        world = await build_world(one[0], one[1], mock)
        await edit_plan(world, "dev", rpm=60)
        replies = await burst([one[1], two[1]], world.user.api_key, 100)
    statuses = [reply.status for reply in replies]
    assert statuses.count(200) == 60
    assert statuses.count(429) == 40


async def test_retry_after_is_the_real_wait_on_the_memory_limiter(world: World, clock: ManualClock) -> None:
    await edit_plan(world, "dev", rpm=60)
    key = world.user.api_key
    assert [reply.status for reply in await burst([world.base_url], key, 30)] == [200] * 30
    clock.advance(10)
    assert [reply.status for reply in await burst([world.base_url], key, 30)] == [200] * 30
    clock.advance(10)
    (refused,) = await burst([world.base_url], key, 1)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "40"  # the first 30 leave the window at t0 + 60 s
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "50s"  # the last 30 leave at t0 + 70 s
    clock.advance(39.5)
    (still,) = await burst([world.base_url], key, 1)
    assert still.status == 429
    assert still.headers["Retry-After"] == "1"  # 0.5 s, never 0
    clock.advance(0.5)
    replies = await burst([world.base_url], key, 31)
    assert sorted(reply.status for reply in replies) == [200] * 30 + [429]


async def test_retry_after_is_the_real_wait_on_redis(
    tmp_path: Path, clock: ManualClock, embedded_database_url: str, redis_prefix: str
) -> None:
    settings = make_settings(
        tmp_path, embedded_database_url, redis_url=REDIS_URL, redis_key_prefix=redis_prefix
    )
    async with MockUpstream() as mock, serve(settings, clock) as served:
        world = await build_world(served[0], served[1], mock)
        await edit_plan(world, "dev", rpm=3)
        replies = await burst([world.base_url], world.user.api_key, 4)
    refused = [reply for reply in replies if reply.status == 429]
    assert len(refused) == 1
    assert 59 <= int(refused[0].headers["Retry-After"]) <= 61


async def test_every_proxied_response_carries_the_rate_headers(world: World) -> None:
    await edit_plan(world, "dev", rpm=10)
    client = world.gateway.client
    auth = {"Authorization": f"Bearer {world.user.api_key}"}
    plain = await client.post("/v1/chat/completions", headers=auth, json=chat_body())
    assert plain.status_code == 200
    assert plain.headers["x-ratelimit-limit-requests"] == "10"
    assert plain.headers["x-ratelimit-remaining-requests"] == "9"
    assert plain.headers["x-ratelimit-reset-requests"] == "1m0s"
    async with client.stream("POST", "/v1/chat/completions", headers=auth, json=chat_body(stream=True)) as r:
        assert r.status_code == 200
        assert r.headers["x-ratelimit-remaining-requests"] == "8"
        await r.aread()
    anthropic = await client.post(
        "/v1/messages",
        headers={"x-api-key": world.user.api_key},
        json={"model": ANTHROPIC_MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert anthropic.status_code == 200
    assert anthropic.headers["x-ratelimit-remaining-requests"] == "7"
    failing = await client.post(
        "/v1/chat/completions",
        headers=auth,
        json=chat_body(messages=[{"role": "user", "content": "[mock status=500]"}]),
    )
    assert failing.status_code == 500
    assert failing.headers["x-ratelimit-remaining-requests"] == "6"
    unknown = await client.post("/v1/chat/completions", headers=auth, json=chat_body(model="no-such-model"))
    assert unknown.status_code == 404, "after the RPM check in the SPEC order, so it used a slot"
    assert unknown.headers["x-ratelimit-remaining-requests"] == "5"


async def test_requests_refused_for_their_key_or_body_do_not_use_the_budget(world: World) -> None:
    await edit_plan(world, "dev", rpm=5)
    client = world.gateway.client
    auth = {"Authorization": f"Bearer {world.user.api_key}"}
    for _ in range(5):
        bad_json = await client.post("/v1/chat/completions", headers=auth, content=b"{not json")
        assert bad_json.status_code == 400
        assert "x-ratelimit-limit-requests" not in bad_json.headers
        no_messages = await client.post("/v1/chat/completions", headers=auth, json={"model": "gpt-test"})
        assert no_messages.status_code == 400
        bad_key = await client.post(
            "/v1/chat/completions",
            headers={"Authorization": "Bearer sk-trollllm-" + "0" * 64},
            json=chat_body(),
        )
        assert bad_key.status_code == 401
    replies = await burst([world.base_url], world.user.api_key, 6)
    assert sorted(reply.status for reply in replies) == [200] * 5 + [429]


async def test_a_plan_with_rpm_0_refuses_every_request_with_a_clear_429(world: World) -> None:
    await edit_plan(world, "dev", rpm=0)
    (reply,) = await burst([world.base_url], world.user.api_key, 1)
    assert reply.status == 429
    assert error_type(reply) == "rate_limit_exceeded"
    assert "0 requests per minute" in orjson.loads(reply.body)["error"]["message"]
    assert reply.headers["Retry-After"] == "60"


@pytest.mark.parametrize("rpm", [-1, -(2**63), 1_000_001, 2**64, "60", 1.5, True, None])
async def test_negative_or_absurd_rpm_is_refused_by_the_admin_api(world: World, rpm: Any) -> None:
    plans = (await world.admin_call("GET", "/api/admin/plans")).json()["plans"]
    dev = next(plan for plan in plans if plan["name"] == "dev")
    body = {key: value for key, value in dev.items() if key != "name"} | {"rpm": rpm}
    response = await world.gateway.client.put("/api/admin/plans/dev", headers=world.admin.auth, json=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "rpm"
    after = (await world.admin_call("GET", "/api/admin/plans")).json()["plans"]
    assert next(plan for plan in after if plan["name"] == "dev")["rpm"] == dev["rpm"]


async def test_the_largest_rpm_allowed_works(world: World) -> None:
    await edit_plan(world, "dev", rpm=1_000_000)
    (reply,) = await burst([world.base_url], world.user.api_key, 1)
    assert reply.status == 200
    assert reply.headers["x-ratelimit-limit-requests"] == "1000000"
    assert reply.headers["x-ratelimit-remaining-requests"] == "999999"


async def test_own_key_and_friend_key_share_one_budget_through_the_proxy(world: World) -> None:
    await edit_plan(world, "dev", rpm=6)
    client = world.gateway.client
    created = await client.post("/api/user/friend-key", headers=world.user.auth)
    assert created.status_code == 201, created.text
    limits = [{"modelId": OPENAI_MODEL, "limitUsd": 5, "enabled": True}]
    put = await client.put(
        "/api/user/friend-key/limits", headers=world.user.auth, json={"modelLimits": limits}
    )
    assert put.status_code == 200, put.text
    own = await burst([world.base_url], world.user.api_key, 4)
    friend = await burst([world.base_url], created.json()["friendKey"], 4)
    assert [reply.status for reply in own] == [200] * 4
    assert sorted(reply.status for reply in friend) == [200, 200, 429, 429]
    assert {reply.headers["x-ratelimit-limit-requests"] for reply in own + friend} == {"6"}


async def test_own_key_and_friend_key_share_the_owner_budget(clock: ManualClock) -> None:
    """The budget is keyed by the owner's user id, which a Friend Key request carries as its `user_id`."""
    limiter = FallbackLimiter(MemoryLimiter(clock), clock)
    own = [await limiter.hit("rpm:7", 3, 60) for _ in range(2)]
    friend = await limiter.hit("rpm:7", 3, 60)  # a friend-key request of the same owner
    other_owner = await limiter.hit("rpm:8", 3, 60)
    assert all(status.allowed for status in [*own, friend, other_owner])
    assert not (await limiter.hit("rpm:7", 3, 60)).allowed


class _BrokenLimiter:
    """A shared limiter that fails until `healthy` is set."""

    def __init__(self, clock: ManualClock) -> None:
        self.healthy = False
        self.inner = MemoryLimiter(clock)

    async def hit(self, key: str, limit: int, window_s: float, cost: int = 1) -> LimitDecision:
        if not self.healthy:
            raise LimiterUnavailable("down")
        return await self.inner.hit(key, limit, window_s, cost)

    async def peek(self, key: str, limit: int, window_s: float) -> LimitDecision:
        raise NotImplementedError

    async def reset(self, key: str) -> None:
        raise NotImplementedError

    async def release(self, key: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Nothing to release."""


async def test_the_fallback_is_the_instance_share_never_unlimited(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    broken = _BrokenLimiter(clock)
    limiter = FallbackLimiter(broken, clock, instances=3, retry_interval_s=2)
    with caplog.at_level(logging.WARNING, logger="trollllm.ratelimit"):
        decisions = [await limiter.hit("rpm:1", 10, 60) for _ in range(6)]
        assert [d.allowed for d in decisions] == [True] * 4 + [False] * 2  # ⌈10 / 3⌉ = 4
        assert {d.limit for d in decisions} == {4} and not any(d.shared for d in decisions)
        assert not (await limiter.hit("rpm:1", 0, 60)).allowed
        broken.healthy = True
        assert not (await limiter.hit("rpm:1", 10, 60)).shared, (
            "Redis is probed again only after the interval"
        )
        clock.advance(2)
        recovered = await limiter.hit("rpm:1", 10, 60)
    assert recovered.shared and recovered.limit == 10
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "logged once per outage"
    assert any("back" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert limiter.metrics() == {
        "rate_limiter_outages": 1,
        "rate_limiter_fallback_decisions": 8,
        "rate_limiter_degraded": 0,
    }


async def test_redis_stopped_and_restarted_falls_back_then_recovers(
    tmp_path: Path, clock: ManualClock, embedded_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_process(tmp_path) as redis:
        await redis.start()
        settings = make_settings(tmp_path, embedded_database_url, redis_url=redis.url, instances=2)
        async with MockUpstream() as mock, serve(settings, clock) as served:
            world = await build_world(served[0], served[1], mock)
            await edit_plan(world, "dev", rpm=60)
            key = world.user.api_key
            rpm = world.state.limits
            (healthy,) = await burst([world.base_url], key, 1)
            assert healthy.status == 200 and healthy.headers["x-ratelimit-limit-requests"] == "60"

            redis.stop()
            with caplog.at_level(logging.WARNING, logger="trollllm.ratelimit"):
                replies = await burst([world.base_url], key, 40)
                statuses = sorted(reply.status for reply in replies)
                assert statuses == [200] * 30 + [429] * 10, "⌈60 / 2 instances⌉ locally, never unlimited"
                assert {reply.headers["x-ratelimit-limit-requests"] for reply in replies} == {"30"}
                assert rpm.degraded and rpm.outages == 1

                await redis.start()
                clock.advance(3)  # past the retry interval: the next request probes Redis again
                (back,) = await burst([world.base_url], key, 1)
            assert back.status == 200
            assert back.headers["x-ratelimit-limit-requests"] == "60"
            assert back.headers["x-ratelimit-remaining-requests"] == "59", "a fresh Redis: only this hit"
            assert not rpm.degraded and rpm.metrics()["rate_limiter_outages"] == 1
    errors = [r for r in caplog.records if r.name == "trollllm.ratelimit" and r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert any(r.name == "trollllm.ratelimit" and "back" in r.getMessage() for r in caplog.records)


async def test_a_slow_redis_is_abandoned_for_the_local_share_and_never_a_500(
    tmp_path: Path, clock: ManualClock, embedded_database_url: str
) -> None:
    with redis_process(tmp_path) as redis:
        await redis.start()
        async with slow_proxy(redis.port) as proxy:
            settings = make_settings(tmp_path, embedded_database_url, redis_url=proxy.url, instances=4)
            async with MockUpstream() as mock, serve(settings, clock) as served:
                world = await build_world(served[0], served[1], mock)
                await edit_plan(world, "dev", rpm=60)
                rpm = world.state.limits
                proxy.delay = 3.0
                replies = await burst([world.base_url], world.user.api_key, 20)
                assert sorted(reply.status for reply in replies) == [200] * 15 + [429] * 5  # ⌈60 / 4⌉
                assert rpm.degraded
                proxy.delay = 0.0
                clock.advance(3)
                (back,) = await burst([world.base_url], world.user.api_key, 1)
                assert back.status == 200 and back.headers["x-ratelimit-limit-requests"] == "60"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-3, "0s"),
        (0.0004, "1ms"),
        (0.012, "12ms"),
        (0.999, "999ms"),
        (1, "1s"),
        (1.0001, "1.001s"),
        (59.5, "59.5s"),
        (60, "1m0s"),
        (90.25, "1m30.25s"),
        (3600, "60m0s"),
    ],
)
def test_reset_durations_are_written_as_openai_does(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_the_instance_share_is_rounded_up(clock: ManualClock) -> None:
    limiter = FallbackLimiter(MemoryLimiter(clock), clock, instances=7)
    assert [limiter.local_limit(rpm) for rpm in (0, 1, 7, 8, 300)] == [0, 1, 1, 2, math.ceil(300 / 7)]
    with pytest.raises(ValueError, match="instances"):
        FallbackLimiter(MemoryLimiter(clock), clock, instances=0)


@pytest.mark.parametrize(("reset_after_s", "reset"), [(0.0, "0s"), (0.0125, "13ms"), (61.0, "1m1s")])
def test_rate_headers_show_the_limit_what_is_left_and_the_reset(reset_after_s: float, reset: str) -> None:
    status = RateLimitStatus(
        allowed=True, limit=60, remaining=7, retry_after_s=0.0, reset_after_s=reset_after_s, shared=True
    )
    expected = {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "7",
        "x-ratelimit-reset-requests": reset,
    }
    assert status.headers == expected
    assert status.raw_headers == [(k.encode(), v.encode()) for k, v in expected.items()]
