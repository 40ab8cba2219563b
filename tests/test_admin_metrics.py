"""SPEC §7 `GET /api/admin/metrics?period=1h|24h|7d|all` (issue 14): equal to the request logs for every
period, before and after the rollup and the 30-day purge, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import AppHarness
from helpers import Account, make_admin, register_user
from metrics_helpers import (
    Row,
    add_users,
    expected_metrics,
    iso,
    metrics,
    spread_rows,
    window_start,
    without_to,
    write_logs,
)
from sqlalchemy import delete, event, func, select

from trollllm.clock import ManualClock
from trollllm.db import transaction
from trollllm.money import Money
from trollllm.usage.retention import purge_request_logs, retention_cutoff
from trollllm.usage.rollup import roll_up_request_logs
from trollllm.usage.rollup_tables import RollupState
from trollllm.usage.tables import RequestLog

PERIODS = ("1h", "24h", "7d", "30d", "all")
NOW = datetime(2026, 3, 10, 14, 37, 21, 500_000, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    """A test clock inside a bucket, not on its edge."""
    return ManualClock(NOW)


async def _assert_metrics_equal_logs(
    gateway: AppHarness, admin: Account, rows: list[Row], now: datetime, logs_since: datetime | None = None
) -> None:
    for period in PERIODS:
        body = await metrics(gateway, admin, period)
        assert without_to(body) == expected_metrics(rows, period, now, logs_since), period
        assert body["to"] == iso(now)


async def _watermark(gateway: AppHarness) -> int:
    async with gateway.state.sessions() as session:
        return int(await session.scalar(select(RollupState.last_log_id)) or 0)


async def test_metrics_equal_the_request_logs_for_every_period_before_and_after_the_rollup(
    any_gateway: AppHarness, clock: ManualClock
) -> None:
    admin = await make_admin(any_gateway)
    names = [f"user{i}" for i in range(12)]
    users = await add_users(any_gateway.state.sessions, *names)
    rows = spread_rows(clock.now(), names, 400, days=20)
    await write_logs(any_gateway, users, rows)
    await _assert_metrics_equal_logs(any_gateway, admin, rows, clock.now())  # all live

    await roll_up_request_logs(any_gateway.state.sessions, batch_size=150)
    assert await _watermark(any_gateway) > 0
    await _assert_metrics_equal_logs(any_gateway, admin, rows, clock.now())  # all rolled up

    later = spread_rows(clock.now(), names, 60, days=1, seed=8)
    await write_logs(any_gateway, users, later)
    await _assert_metrics_equal_logs(any_gateway, admin, rows + later, clock.now())  # rolled up + live


async def test_a_half_done_rollup_counts_every_row_once(any_gateway: AppHarness, clock: ManualClock) -> None:
    admin = await make_admin(any_gateway)
    users = await add_users(any_gateway.state.sessions, "ann", "bob")
    rows = spread_rows(clock.now(), ["ann", "bob"], 90, days=3)
    await write_logs(any_gateway, users, rows)
    stop = asyncio.Event()

    def stop_after_the_first_batch(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if (
            statement.startswith("UPDATE usage_rollup_state")
            and "AND usage_rollup_state.last_log_id" in statement
        ):
            stop.set()

    engine = any_gateway.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", stop_after_the_first_batch)
    try:
        await roll_up_request_logs(any_gateway.state.sessions, batch_size=40, stop=stop)
    finally:
        event.remove(engine, "before_cursor_execute", stop_after_the_first_batch)

    assert 0 < await _watermark(any_gateway) <= 41  # the admin's own row, then 40 ids
    await _assert_metrics_equal_logs(any_gateway, admin, rows, clock.now())
    assert await roll_up_request_logs(any_gateway.state.sessions) > 0
    assert await roll_up_request_logs(any_gateway.state.sessions) == 0  # idempotent: nothing left to add
    await _assert_metrics_equal_logs(any_gateway, admin, rows, clock.now())


async def test_metrics_outlive_the_30_day_purge_of_the_logs(
    any_gateway: AppHarness, clock: ManualClock
) -> None:
    admin = await make_admin(any_gateway)
    names = ["ann", "bob", "cat"]
    users = await add_users(any_gateway.state.sessions, *names)
    rows = spread_rows(clock.now(), names, 200, days=60)
    await write_logs(any_gateway, users, rows)

    purged = await purge_request_logs(any_gateway.state.sessions, older_than=retention_cutoff(clock.now()))

    cutoff = retention_cutoff(clock.now())
    assert purged == sum(row.created_at < cutoff for row in rows) > 0
    await _assert_metrics_equal_logs(any_gateway, admin, rows, clock.now(), cutoff)
    newer = spread_rows(clock.now(), names, 30, days=2, seed=9)
    await write_logs(any_gateway, users, newer)
    await _assert_metrics_equal_logs(any_gateway, admin, rows + newer, clock.now(), cutoff)


async def test_the_purge_leaves_logs_that_are_not_rolled_up(
    any_gateway: AppHarness, clock: ManualClock
) -> None:
    users = await add_users(any_gateway.state.sessions, "ann")
    await write_logs(any_gateway, users, [Row("ann", "m", clock.now() - timedelta(days=40))])
    async with any_gateway.state.sessions() as session:
        # As if the rollup had not reached the row yet.
        await session.execute(delete(RollupState))
        session.add(RollupState(id=1, last_log_id=0))
        await session.commit()
    from trollllm.usage import retention

    original = retention.roll_up_request_logs

    async def no_rollup(*_args: object, **_kwargs: object) -> int:
        return 0

    retention.roll_up_request_logs = no_rollup  # type: ignore[assignment]
    try:
        assert await purge_request_logs(any_gateway.state.sessions, older_than=clock.now()) == 0
    finally:
        retention.roll_up_request_logs = original
    assert await purge_request_logs(any_gateway.state.sessions, older_than=clock.now()) == 1


@pytest.mark.parametrize("period", PERIODS[:3])
async def test_a_period_starts_at_its_first_bucket_and_leaves_out_the_instant_before(
    any_gateway: AppHarness, clock: ManualClock, period: str
) -> None:
    admin = await make_admin(any_gateway)
    users = await add_users(any_gateway.state.sessions, "ann")
    start = window_start(period, clock.now())
    assert start is not None
    inside = Row("ann", "m", start, cost_nanos=7)
    before = Row("ann", "m", start - timedelta(microseconds=1), cost_nanos=1000)
    await write_logs(any_gateway, users, [inside, before])

    for rolled_up in (False, True):
        if rolled_up:
            await roll_up_request_logs(any_gateway.state.sessions)
        body = await metrics(any_gateway, admin, period)
        assert body["from"] == iso(start)
        assert (body["requests"], body["spendUsd"]) == (1, 7e-09)
        assert body["series"]["points"][0] == {
            "start": iso(start),
            "requests": 1,
            "errors": 0,
            "inputTokens": 0,
            "outputTokens": 0,
            "spendUsd": 7e-09,
        }


async def test_windows_are_12_five_minute_24_hourly_28_six_hourly_buckets_and_days_since_the_first(
    any_gateway: AppHarness, clock: ManualClock
) -> None:
    admin = await make_admin(any_gateway)
    users = await add_users(any_gateway.state.sessions, "ann")
    await write_logs(any_gateway, users, [Row("ann", "m", clock.now() - timedelta(days=45, hours=3))])
    expected = {"1h": (300, 12, "2026-03-10T13:40:00Z"), "24h": (3600, 24, "2026-03-09T15:00:00Z")}
    expected["7d"] = (21600, 28, "2026-03-03T18:00:00Z")
    for period, (step, count, start) in expected.items():
        body = await metrics(any_gateway, admin, period)
        points = body["series"]["points"]
        assert (body["series"]["bucketSeconds"], len(points), body["from"]) == (step, count, start)
        assert all(point["requests"] == 0 for point in points)  # zero-filled
    everything = (await metrics(any_gateway, admin, "all"))["series"]
    assert everything["bucketSeconds"] == 86400
    assert everything["points"][0]["start"] == "2026-01-24T00:00:00Z"
    assert everything["points"][-1]["start"] == "2026-03-10T00:00:00Z"
    assert len(everything["points"]) == 46
    assert [point["requests"] for point in everything["points"]] == [1] + [0] * 45


async def test_an_empty_system_answers_zeros(any_gateway: AppHarness, clock: ManualClock) -> None:
    body = await metrics(any_gateway, await make_admin(any_gateway), "all")
    assert body["requests"] == 0 and body["errorRate"] == 0.0 and body["spendUsd"] == 0.0
    assert body["latencyP50Ms"] is None and body["latencyP95Ms"] is None
    assert body["byModel"] == [] and body["topUsers"] == [] and body["from"] is None
    assert body["series"]["points"] == [
        {
            "start": "2026-03-10T00:00:00Z",
            "requests": 0,
            "errors": 0,
            "inputTokens": 0,
            "outputTokens": 0,
            "spendUsd": 0.0,
        }
    ]


async def test_error_rate_is_failed_over_all_requests(any_gateway: AppHarness, clock: ManualClock) -> None:
    admin = await make_admin(any_gateway)
    users = await add_users(any_gateway.state.sessions, "ann")
    rows = [Row("ann", "m", clock.now(), is_success=index != 0) for index in range(4)]
    await write_logs(any_gateway, users, rows)
    body = await metrics(any_gateway, admin, "1h")
    assert (body["requests"], body["successfulRequests"], body["failedRequests"]) == (4, 3, 1)
    assert body["errorRate"] == 0.25
    assert body["byModel"][0]["errors"] == 1


async def test_the_error_rate_is_split_by_error_type_refusals_included(
    any_gateway: AppHarness, clock: ManualClock
) -> None:
    admin = await make_admin(any_gateway)
    users = await add_users(any_gateway.state.sessions, "ann")
    now = clock.now()
    earlier = now - timedelta(hours=2)
    rows = [
        Row("ann", "m", now),
        Row("ann", "m", now, is_success=False, error_type="insufficient_credits", status_code=402),
        Row("ann", "m", now, is_success=False, error_type="insufficient_credits", status_code=402),
        Row("ann", "no-such", now, is_success=False, error_type="model_not_found", status_code=404),
        Row("ann", "m", now, is_success=False, error_type="upstream_error", status_code=502),
        Row("ann", "m", earlier, is_success=False, error_type="rate_limited", status_code=429),
    ]
    await write_logs(any_gateway, users, rows)
    body = await metrics(any_gateway, admin, "1h")
    assert body["failedRequests"] == 4 and body["errorRate"] == 0.8
    assert body["errorsByType"] == [
        {"errorType": "insufficient_credits", "statusCode": 402, "refused": True, "requests": 2},
        {"errorType": "model_not_found", "statusCode": 404, "refused": True, "requests": 1},
        {"errorType": "upstream_error", "statusCode": 502, "refused": False, "requests": 1},
    ]
    day = await metrics(any_gateway, admin, "24h")
    assert {"errorType": "rate_limited", "statusCode": 429, "refused": True, "requests": 1} in day[
        "errorsByType"
    ]


async def test_models_sorted_by_spend_then_requests_and_the_top_ten_users_by_spend(
    any_gateway: AppHarness, clock: ManualClock
) -> None:
    admin = await make_admin(any_gateway)
    names = [f"u{i:02d}" for i in range(12)]
    users = await add_users(any_gateway.state.sessions, *names)
    now = clock.now()
    rows = [Row(name, "cheap", now, cost_nanos=10 * (i + 1)) for i, name in enumerate(names)]
    rows += [Row("u00", "dear", now, cost_nanos=10_000), Row("u00", "free", now), Row("u01", "free", now)]
    rows += [Row("u01", "free-once", now)]
    await write_logs(any_gateway, users, rows)
    await roll_up_request_logs(any_gateway.state.sessions)

    body = await metrics(any_gateway, admin, "24h")
    assert [model["model"] for model in body["byModel"]] == ["dear", "cheap", "free", "free-once"]
    assert [user["username"] for user in body["topUsers"]] == [
        "u00",
        *(f"u{i:02d}" for i in range(11, 2, -1)),
    ]
    assert body["topUsers"][0] == {
        "username": "u00",
        "requests": 3,
        "inputTokens": 0,
        "outputTokens": 0,
        "spendUsd": 0.00001001,
    }


async def test_latency_percentiles_are_histogram_bucket_bounds(
    any_gateway: AppHarness, clock: ManualClock
) -> None:
    admin = await make_admin(any_gateway)
    users = await add_users(any_gateway.state.sessions, "ann")
    latencies = (
        [100] * 50 + [110] * 44 + [5000] * 6
    )  # p50 = 100 → bucket [100, 120); p95 = 5000 → [5000, 6000)
    await write_logs(any_gateway, users, [Row("ann", "m", clock.now(), latency_ms=ms) for ms in latencies])
    for rolled_up in (False, True):
        if rolled_up:
            await roll_up_request_logs(any_gateway.state.sessions)
        for period in ("1h", "all"):
            body = await metrics(any_gateway, admin, period)
            assert (body["latencyP50Ms"], body["latencyP95Ms"]) == (120, 6000)


@pytest.mark.parametrize("unsettled_is_newest", [False, True])
async def test_a_late_settlement_replacing_an_unsettled_row_is_counted_once(
    any_gateway: AppHarness, clock: ManualClock, unsettled_is_newest: bool
) -> None:
    admin = await make_admin(any_gateway)
    users = await add_users(any_gateway.state.sessions, "ann")
    unsettled = Row("ann", "m", clock.now() - timedelta(hours=3), is_success=False, error_type="unsettled")
    other = Row("ann", "m", clock.now() - timedelta(hours=2), cost_nanos=5)
    # Newest, on SQLite the replacement takes the deleted row's id, one the rollup has passed already.
    await write_logs(any_gateway, users, [other, unsettled] if unsettled_is_newest else [unsettled, other])
    await roll_up_request_logs(any_gateway.state.sessions)

    # What `settle` does for a request whose hold the sweeper released: drop that row, write its own.
    settled = Row(
        "ann", "m", clock.now() - timedelta(hours=4), cost_nanos=900, request_id=unsettled.request_id
    )
    async with transaction(any_gateway.state.sessions) as session:
        await session.execute(delete(RequestLog).where(RequestLog.request_id == unsettled.request_id))
        session.add(
            RequestLog(
                request_id=settled.request_id,
                user_id=users["ann"],
                model="m",
                credits_cost_nanos=900,
                status_code=200,
                is_success=True,
                created_at=settled.created_at,
            )
        )

    await _assert_metrics_equal_logs(any_gateway, admin, [other, settled], clock.now())
    await roll_up_request_logs(any_gateway.state.sessions)
    await _assert_metrics_equal_logs(any_gateway, admin, [other, settled], clock.now())


async def test_an_invalid_period_is_a_422_in_the_api_error_format(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    response = await any_gateway.client.get("/api/admin/metrics?period=2h", headers=admin.auth)
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_metrics_are_401_anonymous_and_403_for_a_user(any_gateway: AppHarness) -> None:
    assert (await any_gateway.client.get("/api/admin/metrics")).status_code == 401
    user = await register_user(any_gateway, "plain")
    assert (await any_gateway.client.get("/api/admin/metrics", headers=user.auth)).status_code == 403


async def test_sdk_requests_through_the_proxy_appear_in_the_metrics(any_world: Any) -> None:
    from proxy_world import OPENAI_MODEL

    spent = 0
    async with any_world.openai() as client:
        for _ in range(2):
            raw = await client.chat.completions.with_raw_response.create(
                model=OPENAI_MODEL, messages=[{"role": "user", "content": "hello metrics"}]
            )
            spent += Money.from_usd(raw.headers["x-trollllm-cost-usd"]).nanos
    for period in PERIODS:
        body = (await any_world.admin_call("GET", f"/api/admin/metrics?period={period}")).json()
        assert (body["requests"], body["failedRequests"], body["spendUsd"]) == (2, 0, Money(spent).to_json())
        assert [model["model"] for model in body["byModel"]] == [OPENAI_MODEL]
        assert [(user["username"], user["requests"]) for user in body["topUsers"]] == [("alice", 2)]
        assert body["latencyP50Ms"] is not None


async def test_logs_written_after_the_purge_emptied_the_table_are_counted(
    any_gateway: AppHarness, clock: ManualClock
) -> None:
    admin = await make_admin(any_gateway)
    names = ["ann", "bob"]
    users = await add_users(any_gateway.state.sessions, *names)
    async with transaction(any_gateway.state.sessions) as session:  # the admin's login left no log row
        assert await session.scalar(select(RequestLog.id)) is None
    old = spread_rows(clock.now() - timedelta(days=35), names, 20, days=3)
    await write_logs(any_gateway, users, old)
    assert (
        await purge_request_logs(any_gateway.state.sessions, older_than=retention_cutoff(clock.now())) == 20
    )

    # SQLite gives the next row id 1 again: the watermark came down with the table.
    new = spread_rows(clock.now(), names, 5, days=1, seed=3)
    await write_logs(any_gateway, users, new)
    cutoff = retention_cutoff(clock.now())
    await _assert_metrics_equal_logs(any_gateway, admin, old + new, clock.now(), cutoff)
    await roll_up_request_logs(any_gateway.state.sessions)
    await _assert_metrics_equal_logs(any_gateway, admin, old + new, clock.now(), cutoff)


async def test_the_maintenance_pass_rolls_the_logs_up(any_gateway: AppHarness, clock: ManualClock) -> None:
    from trollllm.usage.retention import run_maintenance

    users = await add_users(any_gateway.state.sessions, "ann")
    await write_logs(any_gateway, users, [Row("ann", "m", clock.now())])
    await run_maintenance(any_gateway.state.sessions, clock.now())
    async with any_gateway.state.sessions() as session:
        newest = await session.scalar(select(func.max(RequestLog.id)))
    assert await _watermark(any_gateway) == newest


async def test_rollups_running_at_once_on_two_instances_count_every_row_once(
    app_factory: Any, database_url: str, clock: ManualClock
) -> None:
    first, second = await app_factory(database_url), await app_factory(database_url)
    admin = await make_admin(first)
    names = ["ann", "bob", "cat"]
    users = await add_users(first.state.sessions, *names)
    rows = spread_rows(clock.now(), names, 300, days=8)
    await write_logs(first, users, rows)

    await asyncio.gather(
        roll_up_request_logs(first.state.sessions, batch_size=25),
        roll_up_request_logs(second.state.sessions, batch_size=25),
    )

    await roll_up_request_logs(second.state.sessions)
    await _assert_metrics_equal_logs(first, admin, rows, clock.now())
