"""The admin metrics at scale: seed N request logs (10 million by default), roll them up, time the API.

    .venv/bin/python bench/metrics.py                      # embedded SQLite in a temporary directory
    .venv/bin/python bench/metrics.py --postgres           # a fresh database on 127.0.0.1:5432
    .venv/bin/python bench/metrics.py --rows 1000000 --users 200

The rows are made by the database itself (a recursive CTE on SQLite, generate_series on PostgreSQL), in
id order over the last `--days` days like a live gateway writes them: `--users` users (a few heavy ones),
8 models, 10 % failures, latencies from 50 ms to 30 s, costs up to $0.05. The script then times
- the first rollup pass over every row (what a gateway upgraded onto a full log table runs once; then, on
  PostgreSQL, `ANALYZE`, as autovacuum does soon after),
- `GET /api/admin/metrics?period=…` through the app (ASGI, the admin's JWT), `--repeat` times each, with
  every row rolled up and again with `--live` newer rows not rolled up yet (five minutes of traffic at
  the seeded rate: what a reader sees between two maintenance passes),
- the next maintenance rollup of those live rows.
The seed is fixed (SQLite's `random()` is not seedable; the figures do not depend on the values).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from trollllm.accounts.service import ensure_admin
from trollllm.accounts.tables import User
from trollllm.app import create_app
from trollllm.db import create_sessionmaker, create_test_engine, transaction
from trollllm.migrate import upgrade_to_head
from trollllm.settings import Settings
from trollllm.usage.rollup import roll_up_request_logs

PASSWORD = "bench password 42"
PERIODS = ("1h", "24h", "7d", "all")
MODELS = ("gpt-4o", "gpt-4o-mini", "o3-mini", "claude-sonnet", "claude-haiku", "llama-70b", "gemini", "ds-v3")


def _row_sql(dialect: str, first: int, count: int, start: int, span_s: int, users: int) -> str:
    """One INSERT … SELECT making `count` log rows with ids from `first`, evenly over [start, start+span)."""
    models = "CASE {} " + " ".join(f"WHEN {i} THEN '{name}'" for i, name in enumerate(MODELS)) + " END"
    if dialect == "sqlite":
        last = first + count - 1
        numbers = f"WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) "
        source, rnd = "FROM n", "abs(random())"
        seconds = f"{start} + (i - 1) * {span_s} / {{total}}"
        when = f"strftime('%Y-%m-%d %H:%M:%S', {seconds}, 'unixepoch') || '.000000'"
    else:
        numbers = ""
        source = f"FROM generate_series({first}, {first + count - 1}) AS n(i)"
        rnd = "(random() * 2147483647)::bigint"
        when = f"to_timestamp({start} + (i - 1)::float8 * {span_s} / {{total}}) AT TIME ZONE 'UTC'"
    # A few heavy users: half the rows go to the first 1 % of the users.
    user = f"CASE WHEN {rnd} % 2 = 0 THEN 1 + {rnd} % {max(users // 100, 1)} ELSE 1 + {rnd} % {users} END"
    failed = f"({rnd} % 10 = 0)"
    return (
        f"{numbers}INSERT INTO request_logs (id, request_id, user_id, user_key_id, friend_key_id, "
        "is_friend_key_request, factory_key_id, model, input_tokens, output_tokens, cache_write_tokens, "
        "cache_hit_tokens, credits_cost_nanos, status_code, latency_ms, is_success, is_byok, is_stream, "
        "error_type, created_at) "
        f"SELECT i, 'req_' || i, {user}, NULL, NULL, false, 1, {models.format(f'{rnd} % {len(MODELS)}')}, "
        f"{rnd} % 8000, {rnd} % 2000, {rnd} % 500, {rnd} % 3000, {rnd} % 50000000, "
        f"CASE WHEN {failed} THEN 502 ELSE 200 END, 50 + {rnd} % 30000, NOT {failed}, false, false, NULL, "
        f"{when} {source}"
    )


async def seed(database_url: str, rows: int, users: int, days: int, now: datetime) -> float:
    """Migrate, add `users` users and `rows` logs; returns the seconds taken by the logs."""
    engine = create_test_engine(database_url)
    try:
        await upgrade_to_head(engine)
        dialect = engine.dialect.name
        sessions = create_sessionmaker(engine)
        async with transaction(sessions) as session:
            session.add_all(
                User(username=f"user{i:06d}", password_hash="x", plan="free") for i in range(1, users + 1)
            )
        start_s = int((now - timedelta(days=days)).timestamp())
        span_s = days * 86400 - 600  # the last ten minutes are left to the live rows
        began = time.perf_counter()
        chunk = 1_000_000
        for first in range(1, rows + 1, chunk):
            count = min(chunk, rows - first + 1)
            sql = _row_sql(dialect, first, count, start_s, span_s, users).replace("{total}", str(rows))
            async with engine.begin() as connection:
                if dialect == "sqlite":
                    await connection.exec_driver_sql("PRAGMA synchronous=OFF")
                await connection.exec_driver_sql(sql)
            print(f"  seeded {first + count - 1:,} rows ({time.perf_counter() - began:.0f} s)", flush=True)
        if dialect == "postgresql":
            async with engine.begin() as connection:
                await connection.exec_driver_sql(
                    "SELECT setval(pg_get_serial_sequence('request_logs', 'id'), "
                    "(SELECT max(id) FROM request_logs))"
                )
                await connection.exec_driver_sql("ANALYZE")
        return time.perf_counter() - began
    finally:
        await engine.dispose()


async def add_live_rows(database_url: str, count: int, users: int, now: datetime) -> None:
    """`count` rows in the last five minutes, as the proxy writes them (ids from the table's own)."""
    engine = create_test_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO request_logs (request_id, user_id, is_friend_key_request, model, "
                    "input_tokens, output_tokens, cache_write_tokens, cache_hit_tokens, credits_cost_nanos, "
                    "status_code, latency_ms, is_success, is_byok, is_stream, created_at) VALUES (:rid, "
                    ":user, false, :model, 100, 50, 0, 0, 1750000, 200, 420, true, false, false, :at)"
                ),
                [
                    {
                        "rid": f"live_{uuid.uuid4().hex}",
                        "user": 1 + index % users,
                        "model": MODELS[index % len(MODELS)],
                        "at": (now - timedelta(seconds=300 * (count - index) / count)).replace(tzinfo=None),
                    }
                    for index in range(count)
                ],
            )
    finally:
        await engine.dispose()


async def time_api(settings: Settings, repeat: int) -> dict[str, list[float]]:
    """Milliseconds per `GET /api/admin/metrics?period=…` through the app, `repeat` times per period."""
    app = create_app(settings)
    timings: dict[str, list[float]] = {}
    async with LifespanManager(app) as manager:
        await ensure_admin(app.state.trollllm, "benchadmin", PASSWORD)
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            login = await client.post(
                "/api/auth/login", json={"username": "benchadmin", "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {login.json()['token']}"}
            for period in PERIODS:
                timings[period] = []
                for _ in range(repeat):
                    began = time.perf_counter()
                    response = await client.get(
                        "/api/admin/metrics", params={"period": period}, headers=headers
                    )
                    timings[period].append((time.perf_counter() - began) * 1000)
                    if response.status_code != 200:
                        raise SystemExit(f"metrics answered {response.status_code}: {response.text[:300]}")
                body: dict[str, Any] = response.json()
                print(
                    f"  {period:>4}: median {statistics.median(timings[period]):7.1f} ms, "
                    f"max {max(timings[period]):7.1f} ms; {body['requests']:,} requests, "
                    f"${body['spendUsd']:,.2f}, {len(body['series']['points'])} points, "
                    f"p50 {body['latencyP50Ms']} ms, p95 {body['latencyP95Ms']} ms",
                    flush=True,
                )
    return timings


async def rollup(settings: Settings) -> tuple[float, int]:
    """Seconds and ids of one full rollup pass."""
    engine = create_test_engine(settings.effective_database_url)
    try:
        began = time.perf_counter()
        moved = await roll_up_request_logs(create_sessionmaker(engine))
        return time.perf_counter() - began, moved
    finally:
        await engine.dispose()


async def _analyze(database_url: str) -> None:
    engine = create_test_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("ANALYZE")
    finally:
        await engine.dispose()


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--live", type=int, default=0, help="rows not rolled up (default: 5 minutes' worth)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--postgres", action="store_true", help="PostgreSQL on 127.0.0.1:5432 instead of SQLite"
    )
    parser.add_argument(
        "--keep", type=Path, help="keep the database: SQLite in this directory; PostgreSQL not dropped"
    )
    args = parser.parse_args()
    now = datetime.now(UTC)
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="trollllm-metrics-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    database = f"metrics_bench_{uuid.uuid4().hex[:8]}"
    if args.postgres:
        import asyncpg

        admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        await admin.execute(f'CREATE DATABASE "{database}"')
        await admin.close()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
    else:
        url = f"sqlite+aiosqlite:///{data_dir / 'trollllm.db'}"
    settings = Settings.model_validate(
        {
            "data_dir": data_dir,
            "database_url": url,
            "secret": "b" * 40,
            "auto_migrate": False,
            "log_level": "WARNING",
        }
    )
    try:
        print(
            f"seeding {args.rows:,} request logs on {'PostgreSQL' if args.postgres else 'SQLite'}", flush=True
        )
        seeded_s = await seed(url, args.rows, args.users, args.days, now)
        print(f"seeded in {seeded_s:.0f} s", flush=True)
        first_s, moved = await rollup(settings)
        print(
            f"first rollup pass: {moved:,} rows in {first_s:.1f} s ({moved / first_s:,.0f} rows/s)",
            flush=True,
        )
        if args.postgres:
            await _analyze(url)  # what autovacuum does soon after the rollup tables filled
        print("metrics API, every row rolled up:", flush=True)
        await time_api(settings, args.repeat)
        live = args.live or max(args.rows // (args.days * 288), 1)
        await add_live_rows(url, live, args.users, datetime.now(UTC))
        print(f"metrics API, {live:,} rows not rolled up yet:", flush=True)
        await time_api(settings, args.repeat)
        next_s, moved = await rollup(settings)
        print(f"next rollup pass: {moved:,} rows in {next_s * 1000:.0f} ms", flush=True)
    finally:
        if args.postgres and args.keep is not None:
            print(f"kept PostgreSQL database {database}")
        elif args.postgres:
            import asyncpg

            admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await admin.close()
        elif args.keep is None:
            import shutil

            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
