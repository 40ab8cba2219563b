"""SPEC §8 `/dashboard/request-history`: columns, 20 a page, the date range in the URL, CSV, detail."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import AppHarness
from helpers import Account, register_user
from sqlalchemy import select

from trollllm.accounts.sessions import SESSION_COOKIE
from trollllm.accounts.tables import User
from trollllm.db import transaction
from trollllm.usage.tables import RequestLog

PAGE = "/dashboard/request-history"
T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


async def _signed_in(gateway: AppHarness, name: str = "alice") -> tuple[Account, int]:
    account = await register_user(gateway, name)
    gateway.client.cookies.set(SESSION_COOKIE, account.token)
    async with gateway.state.sessions() as session:
        user_id = await session.scalar(select(User.id).where(User.username == name))
    assert user_id is not None
    return account, user_id


async def _insert(gateway: AppHarness, user_id: int, times: list[datetime], **fields: Any) -> list[str]:
    ids = [f"req_{uuid.uuid4().hex}" for _ in times]
    values: dict[str, Any] = {"model": "gpt-test", "status_code": 200, "is_success": True} | fields
    async with transaction(gateway.state.sessions) as session:
        session.add_all(
            RequestLog(request_id=request_id, user_id=user_id, created_at=when, **values)
            for request_id, when in zip(ids, times, strict=True)
        )
    return ids


async def test_history_page_shows_the_spec_columns_and_formats(gateway: AppHarness) -> None:
    _, user_id = await _signed_in(gateway)
    await _insert(gateway, user_id, [T0], input_tokens=1234, output_tokens=500, cache_write_tokens=7,
                  cache_hit_tokens=9, credits_cost_nanos=17_500_000, latency_ms=321)  # fmt: skip

    html = (await gateway.client.get(PAGE)).text

    for column in ("Time", "Model", "Input Tokens", "Output Tokens", "Cache (Write/Hit)", "Credits Cost",
                   "Status", "Latency"):  # fmt: skip
        assert f">{column}</th>" in html
    assert "2026-01-10 12:00:00" in html
    assert "1,234" in html and "7 / 9" in html and "$0.017500" in html and "321 ms" in html


async def test_history_page_has_20_rows_a_page_with_numbers_and_total(gateway: AppHarness) -> None:
    _, user_id = await _signed_in(gateway)
    await _insert(gateway, user_id, [T0 + timedelta(minutes=i) for i in range(45)])

    first = (await gateway.client.get(PAGE)).text
    last = (await gateway.client.get(PAGE, params={"page": 3})).text

    assert first.count("<tr>") == 21 and "Page 1 of 3 · 45 total" in first
    assert ">Next</a>" in first and ">Previous</a>" not in first
    assert last.count("<tr>") == 6 and ">Previous</a>" in last and ">Next</a>" not in last


async def test_history_date_range_is_in_the_url_and_kept_by_the_pager(gateway: AppHarness) -> None:
    _, user_id = await _signed_in(gateway)
    await _insert(gateway, user_id, [T0 + timedelta(days=d) for d in range(5)] * 10)

    html = (await gateway.client.get(PAGE, params={"from": "2026-01-11", "to": "2026-01-12"})).text

    assert "Page 1 of 1 · 20 total" in html
    assert 'value="2026-01-11"' in html and "from=2026-01-11" in html


async def test_history_bad_date_is_explained_not_a_json_error(gateway: AppHarness) -> None:
    await _signed_in(gateway)

    response = await gateway.client.get(PAGE, params={"from": "yesterday"})

    assert response.status_code == 200
    assert "from must be an ISO 8601 date" in response.text


async def test_history_without_requests_says_how_to_make_a_first_call(gateway: AppHarness) -> None:
    await _signed_in(gateway)

    html = (await gateway.client.get(PAGE)).text

    assert "No requests yet" in html and "/v1/chat/completions" in html


async def test_csv_export_streams_every_row_of_the_range(gateway: AppHarness) -> None:
    _, user_id = await _signed_in(gateway)
    inside = await _insert(
        gateway, user_id, [T0 + timedelta(seconds=i) for i in range(1203)], credits_cost_nanos=1
    )
    await _insert(gateway, user_id, [T0 + timedelta(days=3)])

    response = await gateway.client.get(
        f"{PAGE}/export.csv", params={"from": "2026-01-10", "to": "2026-01-10"}
    )

    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:3] == ["time_utc", "request_id", "model"]
    assert sorted(row[1] for row in rows[1:]) == sorted(inside), "every row once, across batches"
    assert {row[7] for row in rows[1:]} == {"0.000000001"}, "the exact cost in USD"


async def test_request_detail_shows_the_key_used_and_the_cost(gateway: AppHarness) -> None:
    _, user_id = await _signed_in(gateway)
    [request_id] = await _insert(gateway, user_id, [T0], is_friend_key_request=True, cache_hit_tokens=42,
                                 credits_cost_nanos=123_456_789)  # fmt: skip

    html = (await gateway.client.get(f"{PAGE}/{request_id}")).text

    assert request_id in html and "Friend Key" in html and "42" in html and "$0.123457" in html


async def test_another_users_request_detail_is_not_found(gateway: AppHarness) -> None:
    _, alice_id = await _signed_in(gateway, "alice")
    [request_id] = await _insert(gateway, alice_id, [T0])
    await _signed_in(gateway, "bob")

    response = await gateway.client.get(f"{PAGE}/{request_id}")

    assert response.status_code == 404 and request_id not in response.text


async def test_an_empty_past_range_says_nothing_matches_not_make_a_first_call(gateway: AppHarness) -> None:
    _, user_id = await _signed_in(gateway)
    await _insert(gateway, user_id, [T0])

    html = (await gateway.client.get(PAGE, params={"from": "2025-01-01", "to": "2025-01-02"})).text

    assert "No requests match these filters" in html
    assert "No requests yet" not in html and "Make a first call" not in html


async def test_the_range_table_and_csv_use_the_users_time_zone_and_name_it(gateway: AppHarness) -> None:
    account, user_id = await _signed_in(gateway)
    await gateway.client.put(
        "/api/user/settings",
        json={"timeZone": "Asia/Tokyo"},
        headers={"Authorization": f"Bearer {account.token}"},
    )
    # 20:00 UTC on the 10th is 05:00 on the 11th in Tokyo (UTC+9).
    [request_id] = await _insert(gateway, user_id, [datetime(2026, 1, 10, 20, 0, tzinfo=UTC)])
    eleventh = {"from": "2026-01-11", "to": "2026-01-11"}

    html = (await gateway.client.get(PAGE, params=eleventh)).text
    exported = await gateway.client.get(f"{PAGE}/export.csv", params=eleventh)

    assert "2026-01-11 05:00:00" in html and "times in Asia/Tokyo" in html
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][0] == "time_asia/tokyo"
    assert [(row[0], row[1]) for row in rows[1:]] == [("2026-01-11 05:00:00", request_id)]
