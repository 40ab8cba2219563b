"""Micro-benchmark of usage windows on the hot path: CPU per request added by a plan with two windows.

    PYTHONPATH=. .venv/bin/python bench/windows.py

Runs a request's two SQL programs, `place_hold` and `settle`, on the embedded shape's runner (SQLite,
WAL, one connection on the event loop) for one user, one after the other, without windows and with a
5h and a 7d window (one hour bucket, one day bucket), and prints the CPU time per request of each and
the difference (the issue 27 target: at most 0.05 ms added).
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from trollllm.billing.holds import HeldRequest, place_hold
from trollllm.billing.records import RequestRecord
from trollllm.billing.settlement import settle
from trollllm.billing.windows import WindowLimit, span_flags
from trollllm.db import create_engine
from trollllm.migrate import upgrade_to_head
from trollllm.money import Money, TokenUsage
from trollllm.storage.sqlprogram import SqliteRunner

REQUESTS = 4000
ROUNDS = 5
WINDOWS = (WindowLimit("5h", 10**15, None), WindowLimit("7d", 10**15, 10**12))


async def _database(path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade_to_head(engine)
    await engine.dispose()
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO users (id, username, password_hash, role, is_active, token_version, plan, "
            "credits_nanos, ref_credits_nanos, held_nanos, tokens_used, total_input_tokens, "
            "total_output_tokens, total_cache_write_tokens, total_cache_hit_tokens, monthly_tokens_used, "
            "created_at) VALUES (1, 'bench', 'x', 'user', 1, 0, 'dev', 10000000000000, 0, 0, 0, 0, 0, 0, "
            "0, 0, '2026-01-01 00:00:00')"
        )


async def _cpu_per_request(runner: SqliteRunner, windows: tuple[WindowLimit, ...], offset: int) -> float:
    usage = TokenUsage(input_tokens=20, output_tokens=16)
    record = RequestRecord(model_id="bench", status_code=200, latency_ms=1, is_success=True, is_stream=False)
    start = datetime(2026, 1, 15, 12, tzinfo=UTC)
    started = time.process_time()
    for index in range(REQUESTS):
        now = start + timedelta(seconds=(offset + index) * 0.5)
        held = HeldRequest(
            request_id=f"r{offset + index}",
            user_id=1,
            amount=Money(200_000),
            model_id="bench",
            tokens=4116,
            window_spans=span_flags(windows),
            admitted_s=int(now.timestamp()),
        )
        hold_id = await runner.write(place_hold(held, now, token_limit=15_000_000_000, windows=windows))
        assert hold_id is not None
        await runner.write(settle(held, hold_id, Money(150_000), usage, record, now))
    return (time.process_time() - started) * 1000 / REQUESTS


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"
        await _database(path)
        runner = SqliteRunner(str(path), asyncio.Lock())
        offset = 0
        without: list[float] = []
        with_windows: list[float] = []
        for _ in range(ROUNDS):  # interleaved, so drift (WAL growth, CPU frequency) hits both alike
            without.append(await _cpu_per_request(runner, (), offset))
            offset += REQUESTS
            with_windows.append(await _cpu_per_request(runner, WINDOWS, offset))
            offset += REQUESTS
        runner.close()
    base, windowed = min(without), min(with_windows)
    print(f"hold + settle, no window:   {base:.4f} ms CPU per request (best of {ROUNDS} x {REQUESTS})")
    print(f"hold + settle, two windows: {windowed:.4f} ms CPU per request")
    verdict = "PASS" if windowed - base <= 0.05 else "FAIL"
    print(f"added by two windows:       {windowed - base:.4f} ms (target <= 0.05 ms: {verdict})")


if __name__ == "__main__":
    asyncio.run(main())
