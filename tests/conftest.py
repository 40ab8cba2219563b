"""Fixtures: real databases (SQLite file and PostgreSQL), real Redis, and an app per test."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from log_scan import SCAN as KEY_SCAN
from log_scan import install as install_key_scan
from postgres_lock import POSTGRES_LOCK
from redis.asyncio import Redis
from services import (
    HOW_TO_PROVIDE,
    POSTGRES_HOST,
    POSTGRES_PORT,
    REDIS_URL,
    SKIPPED_SERVICES,
    postgres_available,
    redis_available,
    under_ci,
)
from sqlalchemy import text

from trollllm.app import create_app
from trollllm.clock import ManualClock
from trollllm.db import create_test_engine
from trollllm.migrate import upgrade_to_head
from trollllm.mockupstream import MockUpstream
from trollllm.settings import Settings
from trollllm.state import AppState

TEST_SECRET = "test-secret-" + "x" * 40
NO_PROVIDER_URL = "http://127.0.0.1:9"
# The scaled shape, the real CLIs, the browser (fixtures); the workers' summaries gathered (pytest-xdist).
pytest_plugins = ["instances", "cli_clients", "browser", "worker_totals"]


def require_service(name: str, available: bool) -> None:
    """Fail under CI, skip (and remember, for the loud summary line) elsewhere."""
    if available:
        return
    if under_ci():
        pytest.fail(f"{name} is required under CI=true but is not reachable: {HOW_TO_PROVIDE[name]}")
    SKIPPED_SERVICES.add(name)
    pytest.skip(f"{name} not reachable")


def pytest_configure(config: pytest.Config) -> None:
    install_key_scan()  # every log record of the run is scanned for whole keys (tests/log_scan.py)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if KEY_SCAN.leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if KEY_SCAN.leaks:
        terminalreporter.write_line(
            f"!!! FAILED: {len(KEY_SCAN.leaks)} of {KEY_SCAN.records} log records held a whole key "
            "(shown masked here):",
            red=True,
            bold=True,
        )
        for leak in KEY_SCAN.leaks[:20]:
            terminalreporter.write_line(f"    {leak}", red=True)
    else:
        terminalreporter.write_line(f"log scan: no whole key in {KEY_SCAN.records} log records")
    for name in sorted(SKIPPED_SERVICES):
        terminalreporter.write_line(
            f"!!! SKIPPED every {name} test: {name} is not reachable. Provide {HOW_TO_PROVIDE[name]} "
            "to run them (CI=true makes this a failure).",
            red=True,
            bold=True,
        )


# --- databases -----------------------------------------------------------------------------------


def pg_url(database: str) -> str:
    """The URL of a database on the test PostgreSQL."""
    return f"postgresql+asyncpg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"


async def pg_execute(sql: str) -> None:
    """Run one statement on the test PostgreSQL's `test` database (CREATE/DROP DATABASE)."""
    connection = await asyncpg.connect(
        host=POSTGRES_HOST, port=POSTGRES_PORT, user="postgres", database="test"
    )
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _migrate(url: str) -> None:
    engine = create_test_engine(url)
    try:
        await upgrade_to_head(engine)
        # The seeded providers name the real APIs; a test that saves an own key without pointing its provider
        # at the mock must never reach out of this machine: port 9 on loopback refuses at once.
        async with engine.begin() as connection:
            await connection.execute(text(f"UPDATE providers SET base_url = '{NO_PROVIDER_URL}'"))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def _postgres_lock_file(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Under pytest-xdist, the lock file of PostgreSQL's connections (tests/postgres_lock.py) is in the run's
    temp folder, beside the folders of its workers."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        POSTGRES_LOCK.path = tmp_path_factory.getbasetemp().parent / "postgres.lock"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once keeps the suite fast)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated PostgreSQL database used as the template of each test's own database."""
    require_service("postgres", postgres_available())
    name = f"trollllm_tmpl_{uuid.uuid4().hex[:12]}"
    asyncio.run(pg_execute(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(_migrate(pg_url(name)))
        yield name
    finally:
        asyncio.run(pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _sqlite_database(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "trollllm.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def embedded_database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh, migrated SQLite database for this test."""
    return _sqlite_database(sqlite_template, tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for this test, on each backend in turn."""
    if request.param == "sqlite":
        yield _sqlite_database(sqlite_template, tmp_path)
        return
    with POSTGRES_LOCK.shared():  # never beside another worker's cluster (tests/postgres_lock.py)
        yield from _postgres_database(request.getfixturevalue("postgres_template"))


def _postgres_database(template: str) -> Iterator[str]:
    """A database copied from `template`, dropped after the test."""
    name = f"trollllm_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield pg_url(name)
    finally:
        asyncio.run(pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_database_url(postgres_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test (dropped after it)."""
    with POSTGRES_LOCK.shared():  # never beside another worker's cluster (tests/postgres_lock.py)
        yield from _postgres_database(postgres_template)


# --- redis -----------------------------------------------------------------------------------------


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the real Redis; its keys are deleted afterwards."""
    require_service("redis", redis_available())
    prefix = f"trollllm-test:{uuid.uuid4().hex}:"
    yield prefix
    client: Redis = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# --- apps ------------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    """The test's controllable clock."""
    return ManualClock()


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    """Settings for a test app: its own data dir and database, a fixed secret, no migrations at start."""
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "database_url": database_url,
        "secret": TEST_SECRET,
        "auto_migrate": False,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings.model_validate(values)


class AppHarness:
    """A running app, its state and an HTTP client on it."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.trollllm
        return state


AppFactory = Callable[..., Any]


@pytest.fixture
async def app_factory(tmp_path: Path, clock: ManualClock) -> AsyncIterator[AppFactory]:
    """Start apps on a given database (several may share one, like instances behind a balancer)."""
    stack: list[tuple[LifespanManager, httpx.AsyncClient]] = []

    async def start(database_url: str, **overrides: Any) -> AppHarness:
        app = create_app(make_settings(tmp_path, database_url, **overrides), clock=clock)
        manager = LifespanManager(app)
        await manager.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app, client=("198.51.100.7", 5000)),
            base_url="http://testserver",
        )
        stack.append((manager, client))
        return AppHarness(app, client)

    yield start
    for manager, client in reversed(stack):
        await client.aclose()
        await manager.__aexit__(None, None, None)


@pytest.fixture
async def gateway(app_factory: AppFactory, embedded_database_url: str) -> AppHarness:
    """The gateway on a fresh embedded (SQLite) database."""
    harness: AppHarness = await app_factory(embedded_database_url)
    return harness


@pytest.fixture
async def any_gateway(app_factory: AppFactory, database_url: str) -> AppHarness:
    """The gateway on each database backend in turn."""
    harness: AppHarness = await app_factory(database_url)
    return harness


# --- the proxy world -------------------------------------------------------------------------------


@pytest.fixture
async def world(tmp_path: Path, clock: ManualClock, embedded_database_url: str) -> AsyncIterator[Any]:
    """A served gateway on SQLite with the mock upstream, models, factory keys and a dev-plan user."""
    from proxy_world import served_world

    async with served_world(tmp_path, clock, embedded_database_url) as built:
        yield built


@pytest.fixture
async def any_world(tmp_path: Path, clock: ManualClock, database_url: str) -> AsyncIterator[Any]:
    """The proxy world on each database backend in turn."""
    from proxy_world import build_world, serve

    async with MockUpstream() as mock, serve(make_settings(tmp_path, database_url), clock) as served:
        yield await build_world(served[0], served[1], mock)


# The mock LLM provider on a free loopback port, and the official OpenAI SDK pointed at it.
@pytest.fixture
async def mock() -> AsyncIterator[MockUpstream]:
    async with MockUpstream() as server:
        yield server


@pytest.fixture
async def oai(mock: MockUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key="k", max_retries=0) as client:
        yield client
