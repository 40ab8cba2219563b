"""SPEC §9 login throttling (issue 29, item 5): failures slow down per address and per (username, address);
no one can lock anyone out, and the right password from an address that has not failed is never refused.

On the in-process limiter and on Redis (the scaled shape), the client address being the ASGI peer."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from conftest import AppFactory, AppHarness, require_service
from helpers import PASSWORD, make_admin, register_user
from redis.asyncio import Redis
from services import REDIS_URL, redis_available

from trollllm.clock import ManualClock

WRONG = "not the password"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def throttled(
    request: pytest.FixtureRequest, app_factory: AppFactory, embedded_database_url: str
) -> AsyncIterator[AppHarness]:
    """The gateway with its limits in process, and with them on Redis (its keys deleted after)."""
    if request.param == "memory":
        yield await app_factory(embedded_database_url)
        return
    require_service("redis", redis_available())
    prefix = f"trollllm-test:{uuid.uuid4().hex}:"
    yield await app_factory(embedded_database_url, redis_url=REDIS_URL, redis_key_prefix=prefix)
    client: Redis = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def from_address(gateway: AppHarness, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests come from `address`."""
    transport = httpx.ASGITransport(app=gateway.app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def login(gateway: AppHarness, address: str, username: str, password: str) -> httpx.Response:
    async with from_address(gateway, address) as client:
        return await client.post("/api/auth/login", json={"username": username, "password": password})


async def test_wrong_passwords_from_many_addresses_leave_the_admin_able_to_log_in(
    throttled: AppHarness,
) -> None:
    await make_admin(throttled, "admin")
    for attacker in range(10):
        refused = await login(throttled, f"203.0.113.{attacker + 1}", "admin", WRONG)
        assert refused.status_code == 401
    # The same attack again, the failures of the first round all still in the window.
    for attacker in range(10):
        assert (await login(throttled, f"203.0.113.{attacker + 1}", "admin", WRONG)).status_code == 401
    response = await login(throttled, "192.0.2.50", "admin", PASSWORD)
    assert response.status_code == 200, response.text
    assert response.json()["user"]["role"] == "admin"


async def test_an_address_that_failed_for_a_username_slows_down_there_and_only_there(
    throttled: AppHarness,
) -> None:
    await register_user(throttled, "alice")
    for _ in range(10):
        assert (await login(throttled, "203.0.113.9", "alice", WRONG)).status_code == 401
    slowed = await login(throttled, "203.0.113.9", "alice", PASSWORD)
    assert slowed.status_code == 429
    assert slowed.json()["error"]["type"] == "too_many_attempts"
    assert 1 <= int(slowed.headers["retry-after"]) <= 15 * 60
    assert (await login(throttled, "192.0.2.50", "alice", PASSWORD)).status_code == 200


async def test_an_address_guessing_many_usernames_is_slowed_down_without_locking_them(
    app_factory: AppFactory, embedded_database_url: str
) -> None:
    gateway: AppHarness = await app_factory(embedded_database_url, login_address_max_failures=12)
    await register_user(gateway, "alice")
    for guess in range(12):
        assert (await login(gateway, "203.0.113.9", f"user{guess}", WRONG)).status_code == 401
    assert (await login(gateway, "203.0.113.9", "alice", PASSWORD)).status_code == 429
    assert (await login(gateway, "192.0.2.50", "alice", PASSWORD)).status_code == 200


async def test_a_slowed_address_gets_an_attempt_back_as_its_oldest_failure_leaves_the_window(
    gateway: AppHarness, clock: ManualClock
) -> None:
    await register_user(gateway, "alice")
    for _ in range(10):
        await login(gateway, "203.0.113.9", "alice", WRONG)
        clock.advance(60)
    assert (await login(gateway, "203.0.113.9", "alice", WRONG)).status_code == 429
    clock.advance(15 * 60 - 10 * 60 + 1)  # the first failure has left the 15-minute window: one attempt back
    assert (await login(gateway, "203.0.113.9", "alice", WRONG)).status_code == 401
    assert (await login(gateway, "203.0.113.9", "alice", PASSWORD)).status_code == 429


async def test_the_right_password_clears_the_pair_but_not_the_address_failures_at_other_names(
    app_factory: AppFactory, embedded_database_url: str
) -> None:
    gateway: AppHarness = await app_factory(embedded_database_url, login_address_max_failures=8)
    await register_user(gateway, "alice")
    for guess in range(7):
        assert (await login(gateway, "203.0.113.9", f"victim{guess}", WRONG)).status_code == 401
    for _ in range(3):  # knowing one's own password does not reset the address's count of failures
        assert (await login(gateway, "203.0.113.9", "alice", PASSWORD)).status_code == 200
    assert (await login(gateway, "203.0.113.9", "victim99", WRONG)).status_code == 401
    assert (await login(gateway, "203.0.113.9", "victim99", WRONG)).status_code == 429
