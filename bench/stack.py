"""The system under test: the mock upstream and the gateway as subprocesses, their seeding, /proc readings.

The gateway is the normal one (`python -m trollllm serve`, every feature on), in either shape: embedded
(one process, SQLite in a temporary directory) or scaled (N processes on one fresh PostgreSQL database and
one Redis key prefix, both removed after the run). It is configured only through its HTTP API and its
commands, as an operator would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

MOCK_KEY = "sk-mock-bench-upstream-key"
ADMIN = ("bench-admin", "bench-admin-password")
USER = ("bench-user", "bench-user-password")
BENCH_PLAN = "bench"
MODELS = {  # format -> (gateway model id, upstream model name at the mock)
    "openai": ("bench-gpt", "gpt-4o-mini"),
    "anthropic": ("bench-claude", "claude-3-5-haiku-latest"),
}
CHAT_MODEL = ("bench-groq", "groq", "llama-3.1-8b-instant")
"""(model id, provider, upstream model): an OpenAI-format row without a Responses API (`responses->chat`)."""
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class SetupError(RuntimeError):
    """The mock or the gateway could not be started, seeded or smoke-tested."""


class ProcessGone(SetupError):
    """A measured process exited during the run."""


def _proc(pid: int, name: str) -> str:
    try:
        with open(f"/proc/{pid}/{name}") as file:
            return file.read()
    except FileNotFoundError as exc:
        raise ProcessGone(f"process {pid} exited during the run") from exc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, from ``/proc/<pid>/stat``."""
    fields = _proc(pid, "stat").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def memory_kb(pid: int) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of a process in KiB: resident set now, and its peak."""
    values: dict[str, int] = {}
    for line in _proc(pid, "status").splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            values[line[:5]] = int(line.split()[1])
    if len(values) < 2:  # a zombie: exited, not yet reaped
        raise ProcessGone(f"process {pid} exited during the run")
    return values["VmRSS"], values["VmHWM"]


def machine_busy_seconds() -> float:
    """CPU time spent busy by the whole machine (all cores), from ``/proc/stat``."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def speed_probe_us() -> float:
    """Microseconds for a fixed pure-Python loop (best of 5): how fast this machine's CPU is right now.

    On a shared virtual machine it is not constant (165-300 µs seen on one day); a bench run's figures are
    comparable with another run's only at a similar probe.
    """
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(100):
            sum(range(10_000))
        best = min(best, (time.perf_counter() - started) / 100)
    return best * 1e6


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _clean_env(data_dir: Path) -> dict[str, str]:
    """The environment without any TrollLLM setting of the caller's, plus the bench's own."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TROLLLLM_") and key not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(TROLLLLM_DATA_DIR=str(data_dir), TROLLLLM_LOG_LEVEL="WARNING", TROLLLLM_ENV="development")
    return env


class Processes:
    """The subprocesses of one run; all are stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.env = _clean_env(workdir / "data")
        self._running: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for process in reversed(self._running):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """Start a process; its stdout goes to ``<workdir>/<name>.out``, its stderr to ``<name>.log``."""
        out_path = self.workdir / f"{name}.out"
        with out_path.open("wb") as out, (self.workdir / f"{name}.log").open("wb") as err:
            process = subprocess.Popen(argv, stdout=out, stderr=err, cwd=self.workdir, env=env or self.env)
        self._running.append(process)
        return process, out_path

    def output(self, name: str) -> str:
        """The end of what a process printed, stdout then stderr, for an error message."""
        parts = [(self.workdir / f"{name}.{ext}").read_text(errors="replace") for ext in ("out", "log")]
        return "".join(parts)[-3000:]

    def start_mock(self, *, uvloop: bool) -> tuple[int, str]:
        """Start the mock upstream on a free port; its pid and base URL."""
        loop = "uvloop" if uvloop else "asyncio"
        argv = [
            sys.executable,
            "-m",
            "trollllm.mockupstream",
            "--loop",
            loop,
            "--port",
            "0",
            "--key",
            MOCK_KEY,
        ]
        return self.start_listening("mock", argv)

    def start_listening(self, name: str, argv: list[str]) -> tuple[int, str]:
        """Start a server that prints `… listening on <URL>` once it accepts connections; its pid and URL."""
        process, stdout = self.spawn(name, argv)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for line in stdout.read_text().splitlines():
                if "listening on " in line:
                    return process.pid, line.rsplit(" ", 1)[1]
            if process.poll() is not None:
                break
            time.sleep(0.05)
        raise SetupError(f"{name} did not start:\n{self.output(name)}")

    def command(self, *args: str, env: dict[str, str] | None = None) -> None:
        """Run a `trollllm` command to its end; SetupError with its output when it fails."""
        done = subprocess.run(
            [sys.executable, "-m", "trollllm", *args],
            cwd=self.workdir,
            env=env or self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SetupError(f"trollllm {args[0]} failed:\n{done.stdout}{done.stderr}")

    def start_gateway(self, *, credit_leases: bool = True) -> tuple[int, str]:
        """Create the admin, start the embedded gateway (credit leases on, as it ships, unless told), wait
        for ``/healthz``; its pid and base URL."""
        self.command("create-admin", ADMIN[0], "--password", ADMIN[1])
        return self._serve("gateway", {**self.env, "TROLLLLM_CREDIT_LEASES": str(credit_leases).lower()})

    def start_scaled(
        self, scaled: ScaledServices, instances: int, *, credit_leases: bool = True
    ) -> list[tuple[int, str]]:
        """Migrate the scaled database, create the admin, start `instances` gateways (holds from credit
        leases unless `credit_leases` is False): (pid, URL) of each."""
        env = {**self.env, **scaled.env, "TROLLLLM_CREDIT_LEASES": "true" if credit_leases else "false"}
        self.command("migrate", env=env)
        self.command("create-admin", ADMIN[0], "--password", ADMIN[1], env=env)
        return [
            self._serve(f"scaled-{n}", {**env, "TROLLLLM_DATA_DIR": str(self.workdir / f"scaled-{n}")})
            for n in range(instances)
        ]

    def _serve(self, name: str, env: dict[str, str]) -> tuple[int, str]:
        port = free_port()
        argv = [sys.executable, "-m", "trollllm", "serve", "--host", "127.0.0.1", "--port", str(port)]
        process, _ = self.spawn(name, argv, env)
        return self.wait_healthy(name, process, f"http://127.0.0.1:{port}")

    def wait_healthy(
        self, name: str, process: subprocess.Popen[bytes], url: str, seconds: float = 60.0
    ) -> tuple[int, str]:
        """Wait until the gateway `process` answers `/healthz` at `url`; its pid and URL. SetupError with its
        output if it exits or `seconds` pass first."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return process.pid, url
            except OSError:
                time.sleep(0.1)
        raise SetupError(f"the gateway did not become healthy:\n{self.output(name)}")


class ScaledServices:
    """A fresh PostgreSQL database and a Redis key prefix for the scaled shape; `remove()` drops both."""

    def __init__(self, postgres_url: str, redis_url: str) -> None:
        self.admin_url = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
        self.redis_url = redis_url
        self.database = f"trollllm_bench_{uuid.uuid4().hex[:12]}"
        self.prefix = f"trollllm-bench:{uuid.uuid4().hex[:12]}:"
        base = self.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        self.env = {
            "DATABASE_URL": f"{base}/{self.database}",
            "REDIS_URL": redis_url,
            "TROLLLLM_REDIS_KEY_PREFIX": self.prefix,
            "TROLLLLM_SECRET": "bench-secret-" + "b" * 40,  # every instance must share it
        }

    async def create(self) -> None:
        """Create the database (empty: `trollllm migrate` builds it)."""
        import asyncpg

        try:
            connection = await asyncpg.connect(self.admin_url, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            raise SetupError(f"PostgreSQL at {self.admin_url} is not reachable: {exc}") from exc
        try:
            await connection.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await connection.close()

    async def remove(self) -> None:
        """Drop the database and delete the prefix's Redis keys."""
        import asyncpg
        from redis.asyncio import Redis

        connection = await asyncpg.connect(self.admin_url, timeout=5)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await connection.close()
        client = Redis.from_url(self.redis_url)
        try:
            keys = [key async for key in client.scan_iter(match=self.prefix + "*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


def _call(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    """One JSON call to the gateway's API (no cookie jar, so the Bearer token is the credential)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw = answer.read()
    except urllib.error.HTTPError as exc:
        raise SetupError(
            f"{method} {path} → HTTP {exc.code}: {exc.read()[:500].decode(errors='replace')}"
        ) from exc
    except OSError as exc:
        raise SetupError(f"{method} {path} → {exc}") from exc
    return json.loads(raw) if raw else None


@dataclass(frozen=True, slots=True)
class Seeded:
    """What the load generator needs from the seeded gateway."""

    api_key: str  # the first user's
    models: dict[str, str]  # format -> gateway model id
    api_keys: tuple[str, ...] = ()  # every user's


def seed(base: str, mock_url: str, *, credits_usd: int, users: int = 1) -> Seeded:
    """Models (one per format, and `bench-groq`; $5/$25 per MTok), a factory key per provider pointing at the
    mock, a plan without a practical rate limit (the limiter still runs on every request), and `users`
    funded users."""
    admin = _call(base, "POST", "/api/auth/login", {"username": ADMIN[0], "password": ADMIN[1]})["token"]
    rows = [(provider, model_id, upstream) for provider, (model_id, upstream) in MODELS.items()]
    for provider, model_id, upstream in [*rows, (CHAT_MODEL[1], CHAT_MODEL[0], CHAT_MODEL[2])]:
        _call(
            base,
            "POST",
            "/api/admin/models",
            {
                "modelId": model_id,
                "provider": provider,
                "upstreamModel": upstream,
                "inputPricePerMTok": 5,
                "outputPricePerMTok": 25,
                "maxOutputTokens": 4096,
            },
            admin,
        )
        key = {"name": f"bench-{provider}", "provider": provider, "baseUrl": mock_url, "apiKey": MOCK_KEY}
        _call(base, "POST", "/api/admin/factory-keys", key, admin)
    plan = {
        "name": BENCH_PLAN,
        "apiAccess": True,
        "rpm": 1_000_000,
        "creditGrantUsd": 0,
        "monthlyTokenLimit": None,
        "byokRpm": 1_000_000,
    }
    _call(base, "POST", "/api/admin/plans", plan, admin)
    api_keys = []
    for number in range(users):
        username = USER[0] if number == 0 else f"{USER[0]}-{number}"
        user = _call(base, "POST", "/api/auth/register", {"username": username, "password": USER[1]})["token"]
        api_keys.append(_call(base, "GET", "/api/user/api-key", token=user)["apiKey"])
        _call(base, "PATCH", f"/api/admin/users/{username}", {"plan": BENCH_PLAN}, admin)
        grant = {"amountUsd": credits_usd, "balance": "credits", "reason": "bench"}
        _call(base, "POST", f"/api/admin/users/{username}/credits", grant, admin)
    models = {fmt: model_id for fmt, (model_id, _) in MODELS.items()}
    return Seeded(api_key=api_keys[0], models=models, api_keys=tuple(api_keys))
