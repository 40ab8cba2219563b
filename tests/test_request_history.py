"""SPEC §7 request history and §6 `GET /api/user/requests/{id}`: paging, order, dates, isolation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import AppHarness
from helpers import Account, register_user
from sqlalchemy import event, select

from trollllm.accounts.tables import User
from trollllm.db import transaction
from trollllm.usage.history import PageParams, page_request_logs, parse_instant
from trollllm.usage.routes import router
from trollllm.usage.tables import RequestLog

HISTORY = "/api/user/request-history"
T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def mount_usage_routes(harness: AppHarness) -> AppHarness:
    """Include the usage router unless the app already serves it (once app.py wires it in)."""
    paths = {getattr(route, "path", None) for route in harness.app.router.routes}
    if HISTORY not in paths:
        harness.app.include_router(router)
    return harness


@pytest.fixture
def app(gateway: AppHarness) -> AppHarness:
    return mount_usage_routes(gateway)


@pytest.fixture
def any_app(any_gateway: AppHarness) -> AppHarness:
    return mount_usage_routes(any_gateway)


async def user_id_of(harness: AppHarness, account: Account) -> int:
    async with harness.state.sessions() as session:
        user_id = await session.scalar(select(User.id).where(User.username == account.username))
    assert user_id is not None
    return user_id


async def insert_logs(harness: AppHarness, user_id: int, times: list[datetime], **fields: Any) -> list[str]:
    """Log rows as the proxy writes them, one per timestamp; returns their request ids."""
    ids = [f"req_{uuid.uuid4().hex}" for _ in times]
    values: dict[str, Any] = {"model": "gpt-test", "status_code": 200, "is_success": True} | fields
    async with transaction(harness.state.sessions) as session:
        session.add_all(
            RequestLog(request_id=request_id, user_id=user_id, created_at=when, **values)
            for request_id, when in zip(ids, times, strict=True)
        )
    return ids


async def history(harness: AppHarness, account: Account, **query: Any) -> dict[str, Any]:
    response = await harness.client.get(HISTORY, params=query, headers=account.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_history_of_45_requests_is_pages_of_20_20_5(any_app: AppHarness) -> None:
    alice = await register_user(any_app, "alice")
    times = [T0 + timedelta(minutes=i) for i in range(45)]
    await insert_logs(any_app, await user_id_of(any_app, alice), times)

    pages = [await history(any_app, alice, page=n) for n in (1, 2, 3, 4)]

    assert [len(p["requests"]) for p in pages] == [20, 20, 5, 0]
    assert {(p["total"], p["limit"], p["totalPages"]) for p in pages} == {(45, 20, 3)}
    assert [p["page"] for p in pages] == [1, 2, 3, 4]


async def test_history_is_newest_first_across_pages(any_app: AppHarness) -> None:
    alice = await register_user(any_app, "alice")
    user_id = await user_id_of(any_app, alice)
    times = [T0 + timedelta(seconds=i) for i in range(7)]
    ids = await insert_logs(any_app, user_id, times)
    same_time = await insert_logs(any_app, user_id, [T0 + timedelta(seconds=3)] * 2)

    seen = [
        r["requestId"]
        for n in (1, 2, 3)
        for r in (await history(any_app, alice, page=n, limit=4))["requests"]
    ]

    # Ties on created_at are broken by insertion order, newest first.
    expected = [*ids[6:3:-1], same_time[1], same_time[0], *ids[3::-1]]
    assert seen == expected


async def test_history_date_filter_includes_both_boundaries_exactly(any_app: AppHarness) -> None:
    alice = await register_user(any_app, "alice")
    start, end = T0, T0 + timedelta(hours=2)
    tick = timedelta(microseconds=1)
    ids = await insert_logs(
        any_app,
        await user_id_of(any_app, alice),
        [start - tick, start, start + tick, end - tick, end, end + tick],
    )

    body = await history(any_app, alice, **{"from": start.isoformat(), "to": end.isoformat()})

    assert [r["requestId"] for r in body["requests"]] == ids[4:0:-1]
    assert body["total"] == 4


async def test_history_accepts_z_offsets_and_whole_days(app: AppHarness) -> None:
    alice = await register_user(app, "alice")
    day = datetime(2026, 1, 10, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    ids = await insert_logs(
        app,
        await user_id_of(app, alice),
        [day - tick, day, day + timedelta(days=1) - tick, day + timedelta(days=1)],
    )

    whole_day = await history(app, alice, **{"from": "2026-01-10", "to": "2026-01-10"})
    with_z = await history(app, alice, **{"from": "2026-01-10T00:00:00Z"})
    with_offset = await history(app, alice, to="2026-01-10T01:00:00+01:00")

    assert [r["requestId"] for r in whole_day["requests"]] == [ids[2], ids[1]]
    assert [r["requestId"] for r in with_z["requests"]] == [ids[3], ids[2], ids[1]]
    assert [r["requestId"] for r in with_offset["requests"]] == [ids[1], ids[0]]


def test_an_offset_whose_plus_was_not_percent_encoded_still_parses() -> None:
    # `?to=2026-01-10T01:00:00+01:00` typed into a browser arrives with a space for the `+`.
    assert parse_instant("2026-01-10T01:00:00 01:00", "to", end_of_day=True) == datetime(
        2026, 1, 10, tzinfo=UTC
    )


async def test_history_never_shows_another_users_rows(any_app: AppHarness) -> None:
    alice = await register_user(any_app, "alice")
    bob = await register_user(any_app, "bob")
    await insert_logs(any_app, await user_id_of(any_app, alice), [T0] * 3)
    bob_ids = await insert_logs(any_app, await user_id_of(any_app, bob), [T0 + timedelta(seconds=1)] * 2)

    body = await history(any_app, bob)

    assert sorted(r["requestId"] for r in body["requests"]) == sorted(bob_ids)
    assert body["total"] == 2


async def test_history_row_has_every_field_and_no_factory_key(app: AppHarness) -> None:
    alice = await register_user(app, "alice")
    [request_id] = await insert_logs(
        app,
        await user_id_of(app, alice),
        [T0],
        input_tokens=1000,
        output_tokens=500,
        cache_write_tokens=7,
        cache_hit_tokens=9,
        credits_cost_nanos=17_500_000,
        latency_ms=321,
        user_key_id=None,
        friend_key_id=4,
        is_friend_key_request=True,
        factory_key_id=99,
        is_stream=True,
    )

    [row] = (await history(app, alice))["requests"]

    assert row == {
        "requestId": request_id,
        "userId": "alice",
        "model": "gpt-test",
        "inputTokens": 1000,
        "outputTokens": 500,
        "cacheWriteTokens": 7,
        "cacheHitTokens": 9,
        "creditsCost": 0.0175,
        "creditsCostDisplay": "$0.017500",
        "statusCode": 200,
        "latencyMs": 321,
        "isSuccess": True,
        "isByok": False,
        "isFriendKeyRequest": True,
        "friendKeyId": 4,
        "userKeyId": None,
        "isStream": True,
        "errorType": None,
        "errorMessage": None,
        "isRefused": False,
        "createdAt": "2026-01-10T12:00:00Z",
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"page": "0"}, "page"),
        ({"page": "abc"}, "page"),
        ({"page": "-1"}, "page"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "2.5"}, "limit"),
        ({"from": "garbage"}, "from"),
        ({"from": "2026-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2026-01-11", "to": "2026-01-10"}, "from"),
    ],
)
async def test_history_bad_params_are_400_naming_the_field(
    app: AppHarness, query: dict[str, str], field: str
) -> None:
    alice = await register_user(app, "alice")

    response = await app.client.get(HISTORY, params=query, headers=alice.auth)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["field"] == field


async def test_history_needs_a_session(app: AppHarness) -> None:
    response = await app.client.get(HISTORY)

    assert response.status_code == 401


async def test_request_by_id_returns_own_row(any_app: AppHarness) -> None:
    alice = await register_user(any_app, "alice")
    [request_id] = await insert_logs(any_app, await user_id_of(any_app, alice), [T0], credits_cost_nanos=1)

    response = await any_app.client.get(f"/api/user/requests/{request_id}", headers=alice.auth)

    assert response.status_code == 200, response.text
    assert response.json()["requestId"] == request_id
    assert response.json()["userId"] == "alice"
    assert response.json()["creditsCostDisplay"] == "$0.000001"


async def test_request_by_id_is_404_for_another_users_row_or_unknown(any_app: AppHarness) -> None:
    alice = await register_user(any_app, "alice")
    bob = await register_user(any_app, "bob")
    [request_id] = await insert_logs(any_app, await user_id_of(any_app, alice), [T0])

    others = await any_app.client.get(f"/api/user/requests/{request_id}", headers=bob.auth)
    unknown = await any_app.client.get("/api/user/requests/req_nope", headers=alice.auth)

    assert (others.status_code, unknown.status_code) == (404, 404)
    assert others.json() == unknown.json()


async def plans_of_history_queries(harness: AppHarness, **owner: int) -> list[str]:
    """Run the history query, capture its SQL as sent, and return the database's plan of each statement."""
    engine = harness.state.engine
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "request_logs" in statement:
            captured.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with harness.state.sessions() as session:
            params = PageParams(page=2, limit=5, since=T0 - timedelta(days=1), until=T0 + timedelta(days=1))
            page = await page_request_logs(session, params, **owner)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    assert len(page.rows) == 5 and len(captured) == 2  # the count, then the page

    plans = []
    postgres = engine.dialect.name == "postgresql"
    async with engine.connect() as connection:
        if postgres:
            # Tables this small are cheaper to scan; the test is whether the index can serve the query.
            await connection.exec_driver_sql("ANALYZE request_logs")
            await connection.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in captured:
            explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            rows = (await connection.exec_driver_sql(explain + statement, parameters)).all()
            plans.append("\n".join(" ".join(str(column) for column in row) for row in rows))
    return plans


async def test_history_query_uses_the_user_time_index(any_app: AppHarness) -> None:
    alice = await register_user(any_app, "alice")
    bob = await register_user(any_app, "bob")
    for account, count in ((alice, 10), (bob, 190)):
        times = [T0 + timedelta(seconds=i) for i in range(count)]
        await insert_logs(any_app, await user_id_of(any_app, account), times)

    plans = await plans_of_history_queries(any_app, user_id=await user_id_of(any_app, alice))

    for plan in plans:
        assert "ix_request_logs_user_time" in plan, plan
        assert "TEMP B-TREE" not in plan.upper(), plan  # SQLite: the index gives the order, no sort


async def test_friend_key_activity_query_uses_the_friend_key_time_index(any_app: AppHarness) -> None:
    alice = await register_user(any_app, "alice")
    user_id = await user_id_of(any_app, alice)
    await insert_logs(any_app, user_id, [T0 + timedelta(seconds=i) for i in range(10)], friend_key_id=7)
    await insert_logs(any_app, user_id, [T0 + timedelta(seconds=i) for i in range(190)])

    plans = await plans_of_history_queries(any_app, friend_key_id=7)

    for plan in plans:
        assert "ix_request_logs_friend_key_time" in plan, plan
