"""Limits under faults (issue 11, defect 11): the login throttle is reserved atomically, the account limits
degrade like the RPM limiter when Redis is down, and every provider key shape is masked."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import REDIS_URL, AppHarness
from plan_helpers import redis_process

from trollllm.crypto import mask_secrets

_PASSWORD = "correct horse battery"


async def _register(gateway: AppHarness, username: str = "alice") -> str:
    response = await gateway.client.post(
        "/api/auth/register", json={"username": username, "password": _PASSWORD}
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


async def _login(gateway: AppHarness, password: str) -> int:
    response = await gateway.client.post("/api/auth/login", json={"username": "alice", "password": password})
    return response.status_code


@pytest.fixture(params=["memory", "redis"])
def limiter_backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for the in-process limiter, then for the shared one on this machine's Redis."""
    if request.param == "memory":
        return {}
    prefix = request.getfixturevalue("redis_prefix")
    return {"redis_url": REDIS_URL, "redis_key_prefix": prefix}


async def test_thirty_parallel_wrong_logins_with_a_limit_of_five_admit_exactly_five(
    app_factory: Any, embedded_database_url: str, limiter_backend: dict[str, Any]
) -> None:
    gateway = await app_factory(embedded_database_url, login_max_failures=5, **limiter_backend)
    await _register(gateway)
    statuses = await asyncio.gather(*(_login(gateway, "wrong password") for _ in range(30)))
    assert Counter(statuses) == {401: 5, 429: 25}


async def test_a_correct_login_does_not_use_up_the_address_budget(
    app_factory: Any, embedded_database_url: str
) -> None:
    gateway = await app_factory(embedded_database_url, login_max_failures=2)
    await _register(gateway)
    assert [await _login(gateway, _PASSWORD) for _ in range(6)] == [200] * 6


async def test_a_correct_login_does_not_clear_the_failures_of_its_address(
    app_factory: Any, embedded_database_url: str
) -> None:
    """Logging in to one's own account must not reset the address count used against other accounts."""
    gateway = await app_factory(embedded_database_url, login_max_failures=3, login_address_max_failures=3)
    await _register(gateway)
    assert [await _login(gateway, "wrong password") for _ in range(2)] == [401, 401]
    assert await _login(gateway, _PASSWORD) == 200
    assert [await _login(gateway, "wrong password") for _ in range(2)] == [401, 429]


async def test_login_reveal_and_registration_work_while_redis_is_down(
    app_factory: Any, embedded_database_url: str, tmp_path: Path
) -> None:
    with redis_process(tmp_path) as redis:
        await redis.start()
        gateway = await app_factory(
            embedded_database_url, redis_url=redis.url, register_per_address_per_hour=5
        )
        token = await _register(gateway)
        redis.stop()

        assert await _login(gateway, "wrong password") == 401
        assert await _login(gateway, _PASSWORD) == 200
        reveal = await gateway.client.get("/api/user/api-key", headers={"Authorization": f"Bearer {token}"})
        assert reveal.status_code == 200 and reveal.json()["apiKey"].startswith("sk-trollllm-")
        await _register(gateway, "bob")
        assert gateway.state.limits.degraded


async def test_while_redis_is_down_the_login_limit_still_holds_locally(
    app_factory: Any, embedded_database_url: str, tmp_path: Path
) -> None:
    with redis_process(tmp_path) as redis:
        await redis.start()
        gateway = await app_factory(embedded_database_url, redis_url=redis.url, login_max_failures=4)
        await _register(gateway)
        redis.stop()
        statuses = [await _login(gateway, "wrong password") for _ in range(6)]
    assert statuses == [401] * 4 + [429] * 2  # ⌈4 / 1 instance⌉, never unlimited


@pytest.mark.parametrize(
    ("secret", "last4"),
    [
        ("gsk_" + "Ab3dE" * 10, "b3dE"),
        ("AIzaSy" + "A1b2C3d4E5" * 3 + "xyz", "5xyz"),
        ("xai-" + "Q" * 40 + "wxyz", "wxyz"),
        ("sk-ant-api03-" + "k" * 80 + "-AA1Z", "AA1Z"),
        ("sk-proj-" + "p" * 40 + "9876", "9876"),
    ],
)
def test_every_provider_key_shape_is_masked_in_free_text(secret: str, last4: str) -> None:
    masked = mask_secrets(f'{{"error": {{"message": "Invalid API key: {secret}"}}}}')
    assert secret not in masked and secret[8:-4] not in masked
    assert masked.endswith(f'****...****{last4}"}}}}')


def test_a_bearer_token_of_any_shape_is_masked() -> None:
    masked = mask_secrets("upstream said: Authorization: Bearer abc.DEF-ghi_jkl.mno_pqrs")
    assert "abc.DEF" not in masked and masked.endswith("Bearer ****...****pqrs")
