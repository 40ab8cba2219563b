"""How a serving process runs the app: start-up objects kept out of the garbage collector's way, and room
for thousands of open streams without the operator touching `ulimit` (issue 26)."""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from conftest import TEST_SECRET, make_settings
from plan_helpers import free_port

from trollllm.app import create_app


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def test_a_serving_app_freezes_what_start_up_built(
    tmp_path: Path, embedded_database_url: str, restored_gc: None
) -> None:
    gc.unfreeze()
    app = create_app(make_settings(tmp_path, embedded_database_url), freeze_startup_objects=True)
    async with LifespanManager(app):
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == 10_000


async def test_an_app_built_for_tests_leaves_the_collector_alone(
    tmp_path: Path, embedded_database_url: str, restored_gc: None
) -> None:
    gc.unfreeze()
    app = create_app(make_settings(tmp_path, embedded_database_url))
    async with LifespanManager(app):
        assert gc.get_freeze_count() == 0


LOW_SOFT_LIMIT = 256  # below what a few hundred streams need


# `python -m trollllm serve …` started with the soft limit a distribution might give a service.
LOW_LIMIT_SERVE = (
    "import resource, runpy, sys\n"
    "_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({LOW_SOFT_LIMIT}, hard))\n"
    "sys.argv = ['trollllm', *sys.argv[1:]]\n"
    "runpy.run_module('trollllm', run_name='__main__')\n"
)


def _limits_of(pid: int) -> tuple[str, str]:
    """(soft, hard) "Max open files" of a process, as /proc shows them."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return soft, hard
    raise AssertionError("no open files limit in /proc")


def _listen_backlog(port: int) -> int:
    """The accept backlog of the socket listening on `port` (`ss` shows it as Send-Q)."""
    lines = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert lines, f"nothing listens on {port}"
    return int(lines[0].split()[2])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[tuple[int, int]]:
    """`trollllm serve` started under a low soft limit on open files: (its pid, its port) once healthy."""
    data_dir = tmp_path_factory.mktemp("served")
    database = data_dir / "trollllm.db"
    shutil.copyfile(sqlite_template, database)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "TROLLLLM_DATA_DIR": str(data_dir),
        "TROLLLLM_SECRET": TEST_SECRET,
        "TROLLLLM_AUTO_MIGRATE": "false",
        "TROLLLLM_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", LOW_LIMIT_SERVE, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=data_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2) as client:
            while True:
                assert process.poll() is None, "the gateway exited at start"
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.05)
        yield process.pid, port
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_raises_the_open_files_limit_and_listens_with_a_large_backlog(served: tuple[int, int]) -> None:
    pid, port = served
    soft, hard = _limits_of(pid)
    assert soft == hard != str(LOW_SOFT_LIMIT)
    with Path("/proc/sys/net/core/somaxconn").open() as somaxconn:
        assert _listen_backlog(port) == min(4096, int(somaxconn.read()))


def test_served_responses_do_not_name_the_server_software(served: tuple[int, int]) -> None:
    answer = httpx.get(f"http://127.0.0.1:{served[1]}/healthz", timeout=5)
    assert answer.status_code == 200 and "date" in answer.headers
    assert "server" not in answer.headers


# Four threads check a password each (as logins do, in `asyncio.to_thread`); prints the resident set's
# growth in KiB. `tuned` first makes glibc return large blocks, as `trollllm serve` does.
THREADED_PASSWORD_CHECKS = (
    "import sys, threading\n"
    "from trollllm.crypto import Passwords\n"
    "from trollllm.serving import return_large_blocks_to_os\n"
    "if sys.argv[1] == 'tuned':\n"
    "    assert return_large_blocks_to_os()\n"
    "def rss_kb():\n"
    "    with open('/proc/self/status') as status:\n"
    "        return next(int(line.split()[1]) for line in status if line.startswith('VmRSS:'))\n"
    "passwords = Passwords()\n"
    "stored = passwords.hash('a password')\n"
    "before = rss_kb()\n"
    "for _ in range(4):\n"
    "    check = threading.Thread(target=passwords.verify, args=(stored, 'a password'))\n"
    "    check.start()\n"
    "    check.join()\n"
    "print(rss_kb() - before)\n"
)
ARGON2_KIB = 19 * 1024
glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")


def _rss_growth_kib_of_password_checks(mode: str) -> int:
    run = subprocess.run(
        [sys.executable, "-c", THREADED_PASSWORD_CHECKS, mode], check=True, capture_output=True, text=True
    )
    return int(run.stdout)


@glibc_only
def test_password_checks_in_threads_keep_their_memory_by_default() -> None:
    assert _rss_growth_kib_of_password_checks("default") >= ARGON2_KIB


@glibc_only
def test_password_checks_in_threads_leave_nothing_resident_once_large_blocks_are_returned() -> None:
    assert _rss_growth_kib_of_password_checks("tuned") < ARGON2_KIB // 4


# Packages a serving process loads only when it uses them: Stripe at the first payment, httpx for a key
# check or a webhook, Redis with a Redis URL, asyncpg with PostgreSQL, swagger_ui's code never (only its
# assets). Together ~20 MB of resident memory an embedded gateway would otherwise carry.
LOADED_ON_USE = ("stripe", "httpx", "redis", "asyncpg", "swagger_ui")


def test_building_the_app_loads_none_of_the_packages_loaded_on_use(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from trollllm.app import create_app\n"
        "from trollllm.cli import main\n"
        "from trollllm.settings import Settings\n"
        f"create_app(Settings(data_dir={str(tmp_path)!r}, secret={TEST_SECRET!r}))\n"
        f"print(' '.join(name for name in {LOADED_ON_USE!r} if name in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    assert run.stdout.split() == []
