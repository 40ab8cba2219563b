"""The scaled shape under test: several real `trollllm serve` processes on loopback ports sharing one
PostgreSQL database and one Redis key prefix, in front of the mock upstream (its own process).

Everything is set up as an operator would: `trollllm create-admin` for the admin, then the admin API over
HTTP for models and factory keys, the user API for accounts. The functions here are synchronous (processes,
a blocking HTTP client), so one cluster can serve a whole module; the tests talk to it asynchronously.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TEST_SECRET, pg_execute, pg_url, require_service
from helpers import PASSWORD, Account
from plan_helpers import free_port
from postgres_lock import POSTGRES_LOCK
from redis.asyncio import Redis
from services import REDIS_URL, redis_available

OPENAI_MODEL = "gpt-test"
ANTHROPIC_MODEL = "claude-test"
# $5 / $25 per MTok (SPEC §4), as in the proxy world.
PRICES = {"inputPricePerMTok": 5, "outputPricePerMTok": 25, "cacheWritePricePerMTok": 6.25,
          "cacheHitPricePerMTok": 0.5}  # fmt: skip
START_TIMEOUT_S = 60.0


@dataclass
class Instance:
    """One `trollllm serve` process."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Signal it and reap it; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@dataclass
class Cluster:
    """Instances sharing a database and a Redis prefix, the mock upstream, and the admin."""

    database_url: str
    redis_url: str
    redis_prefix: str
    mock_url: str
    instances: list[Instance]
    admin: Account
    directory: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def urls(self) -> list[str]:
        """Every instance's base URL, in order."""
        return [instance.base_url for instance in self.instances]

    def admin_call(self, method: str, path: str, *, instance: int = 0, **kwargs: Any) -> httpx.Response:
        """An admin API call on one instance that must succeed."""
        response = httpx.request(
            method, self.urls[instance] + path, headers=self.admin.auth, timeout=30, **kwargs
        )
        assert response.status_code < 300, response.text
        return response

    def user_call(
        self, account: Account, method: str, path: str, *, instance: int = 0, **kwargs: Any
    ) -> httpx.Response:
        """A dashboard API call as `account` on one instance that must succeed."""
        url = self.urls[instance] + path
        response = httpx.request(method, url, headers=account.auth, timeout=30, **kwargs)
        assert response.status_code < 300, response.text
        return response

    def new_user(self, username: str, *, plan: str = "dev", instance: int = 0) -> Account:
        """Register `username` on an instance, reveal its key, and put it on `plan`."""
        url = self.urls[instance]
        registered = httpx.post(
            url + "/api/auth/register", json={"username": username, "password": PASSWORD}, timeout=30
        )
        assert registered.status_code == 201, registered.text
        token = registered.json()["token"]
        key = httpx.get(url + "/api/user/api-key", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert key.status_code == 200, key.text
        if plan != "free":
            self.admin_call("PATCH", f"/api/admin/users/{username}", json={"plan": plan})
        return Account(username, token, key.json()["apiKey"])

    def new_plan(self, name: str, *, rpm: int, credit_grant_usd: float = 100) -> None:
        """Add a paid plan with this RPM, no monthly token limit, and this grant on upgrade."""
        self.admin_call(
            "POST",
            "/api/admin/plans",
            json={"name": name, "apiAccess": True, "rpm": rpm, "creditGrantUsd": credit_grant_usd,
                  "monthlyTokenLimit": None, "byokRpm": rpm},
        )  # fmt: skip


def instance_env(
    directory: Path, database_url: str, redis_url: str | None, redis_prefix: str, **extra: str
) -> dict[str, str]:
    """The environment of one instance (SPEC: everything from the environment)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TROLLLLM_REDIS_KEY_PREFIX": redis_prefix,
        "TROLLLLM_DATA_DIR": str(directory),
        "TROLLLLM_SECRET": TEST_SECRET,
        "TROLLLLM_AUTO_MIGRATE": "false",
        "TROLLLLM_LOG_LEVEL": "WARNING",
        **extra,
    }
    env.pop("REDIS_URL", None)
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    return env


def start_instance(directory: Path, env: Mapping[str, str], *args: str) -> Instance:
    """`python -m trollllm serve` on a free loopback port (not yet waited for)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = directory / "serve.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "trollllm", "serve", "--port", str(port), *args],
            env={**env, "TROLLLLM_DATA_DIR": str(directory)},
            cwd=directory,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Instance(process, f"http://127.0.0.1:{port}", log)


def wait_ready(instances: list[Instance], timeout: float = START_TIMEOUT_S) -> None:
    """Wait until every instance answers `/readyz` with 200 (fails with the log of one that exited)."""
    deadline = time.monotonic() + timeout
    waiting = list(instances)
    with httpx.Client(timeout=2) as client:
        while waiting:
            instance = waiting[0]
            if instance.process.poll() is not None:
                raise AssertionError(f"{instance.base_url} exited at start:\n{instance.log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(instance.base_url + "/readyz").status_code == 200:
                    waiting.pop(0)
                    continue
            if time.monotonic() > deadline:
                raise AssertionError(f"{instance.base_url} not ready:\n{instance.log.read_text()}")
            time.sleep(0.05)


@contextlib.contextmanager
def mock_upstream_process(directory: Path) -> Iterator[str]:
    """The mock upstream in a process of its own (it serves a whole module); yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "trollllm.mockupstream", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert process.poll() is None and time.monotonic() < deadline, "the mock upstream did not start"
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def create_admin(env: Mapping[str, str]) -> None:
    """`trollllm create-admin root` as an operator runs it."""
    subprocess.run(
        [sys.executable, "-m", "trollllm", "create-admin", "root", "--password", PASSWORD],
        env={key: value for key, value in env.items() if key != "REDIS_URL"},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def login(base_url: str, username: str) -> Account:
    """Log in through the API; the account with its key."""
    response = httpx.post(
        base_url + "/api/auth/login", json={"username": username, "password": PASSWORD}, timeout=30
    )
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    key = httpx.get(base_url + "/api/user/api-key", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return Account(username, token, key.json()["apiKey"])


def seed_catalog(cluster: Cluster, factory_keys: int = 6) -> None:
    """Both test models and `factory_keys` factory keys per provider, all on the mock upstream."""
    for model_id, provider in ((OPENAI_MODEL, "openai"), (ANTHROPIC_MODEL, "anthropic")):
        cluster.admin_call(
            "POST",
            "/api/admin/models",
            json={
                "modelId": model_id,
                "provider": provider,
                "upstreamModel": f"{model_id}-upstream",
                "maxOutputTokens": 4096,
                **PRICES,
            },
        )
        for number in range(factory_keys):
            cluster.admin_call(
                "POST",
                "/api/admin/factory-keys",
                json={
                    "name": f"{provider}-{number}",
                    "provider": provider,
                    "baseUrl": cluster.mock_url,
                    "apiKey": f"fk-{provider}-{number}",
                },
            )


@contextlib.contextmanager
def gateway_cluster(
    directory: Path,
    *,
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    mock_url: str,
    count: int = 3,
    serve_args: tuple[str, ...] = (),
    **extra_env: str,
) -> Iterator[Cluster]:
    """`count` instances (`trollllm serve *serve_args`) on one database and Redis prefix, an admin, the
    catalog seeded; all stopped after."""
    # Up to 30 connections each: the cluster has PostgreSQL to itself (tests/postgres_lock.py).
    with POSTGRES_LOCK.exclusive():
        env = instance_env(directory, database_url, redis_url, redis_prefix, **extra_env)
        create_admin(env)
        instances = [start_instance(directory / f"instance-{i}", env, *serve_args) for i in range(count)]
        try:
            wait_ready(instances)
            cluster = Cluster(
                database_url,
                redis_url,
                redis_prefix,
                mock_url,
                instances,
                login(instances[0].base_url, "root"),
                directory,
                env,
            )
            seed_catalog(cluster)
            yield cluster
        finally:
            for instance in instances:
                instance.stop()


# --- figures printed at the end of the run ------------------------------------------------------------

FIGURES: dict[str, str] = {}


def report_figure(name: str, value: str) -> None:
    """Remember a measured figure; the terminal summary prints every one (whatever `-s` or `-q` say)."""
    FIGURES[name] = value


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the scaled-shape figures measured in this run."""
    if FIGURES:
        terminalreporter.write_sep("=", "scaled shape figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")


# --- fixtures (registered through `pytest_plugins` in conftest) ---------------------------------------


@pytest.fixture(scope="module")
def scaled_database_url(postgres_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for a module's cluster, dropped after it."""
    name = f"trollllm_scaled_{uuid.uuid4().hex[:12]}"
    asyncio.run(pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"'))
    try:
        yield pg_url(name)
    finally:
        asyncio.run(pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def scaled_redis_prefix() -> Iterator[str]:
    """A Redis key prefix of a module's cluster; its keys are deleted after it."""
    require_service("redis", redis_available())
    prefix = f"trollllm-test:{uuid.uuid4().hex}:"
    yield prefix

    async def clean() -> None:
        client: Redis = Redis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=prefix + "*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()

    asyncio.run(clean())


@pytest.fixture(scope="session")
def mock_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The mock upstream in its own process, for every scaled-shape test of the run."""
    with mock_upstream_process(tmp_path_factory.mktemp("mock")) as url:
        yield url


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    scaled_database_url: str,
    scaled_redis_prefix: str,
    mock_url: str,
) -> Iterator[Cluster]:
    """Three instances on PostgreSQL and Redis for a module: each test uses users and plans of its own, so
    they do not see each other. Stopped at the module's end: each holds up to 30 database connections."""
    with gateway_cluster(
        tmp_path_factory.mktemp("cluster"),
        database_url=scaled_database_url,
        redis_url=REDIS_URL,
        redis_prefix=scaled_redis_prefix,
        mock_url=mock_url,
    ) as running:
        yield running
