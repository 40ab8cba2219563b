"""SPEC §4 on the pages: costs `$X.XXXXXX`, balances 2 to 6 decimals, and the exact amount on hover."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
from conftest import AppHarness
from helpers import register_user
from proxy_world import OPENAI_MODEL, World
from sqlalchemy import select, update

from trollllm.accounts.sessions import SESSION_COOKIE
from trollllm.accounts.tables import User
from trollllm.db import transaction
from trollllm.friendkeys.tables import FriendKeyModelLimit
from trollllm.usage.tables import RequestLog
from trollllm.web.render import usd_balance, usd_cost, usd_exact


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "$0"),
        (1, "$0.000001"),  # the smallest cost is not shown as $0.000000
        (999, "$0.000001"),
        (1_000, "$0.000001"),
        (1_001, "$0.000002"),
        (17_500, "$0.000018"),
        (17_500_000, "$0.017500"),
        (999_999_999, "$1.000000"),
        (1_000_000_000, "$1.000000"),
        (-1, "-$0.000001"),  # a non-zero amount of either sign never reads as zero
    ],
)
def test_cost_filter_shows_six_decimals_rounded_away_from_zero(nanos: int, text: str) -> None:
    assert usd_cost(nanos) == text


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "$0"),
        (999, "$0.00"),  # below a micro-dollar: truncated, never shown as more than it is
        (1_000, "$0.000001"),
        (10_000_000, "$0.01"),
        (100_000_000, "$0.10"),
        (1_000_000_000, "$1.00"),
        (1_230_000_000, "$1.23"),
        (1_234_000_000, "$1.234"),
        (7_654_321_999, "$7.654321"),
        (225_000_000_000, "$225.00"),
    ],
)
def test_balance_filter_shows_two_to_six_decimals(nanos: int, text: str) -> None:
    assert usd_balance(nanos) == text


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "$0.000000000"),
        (1, "$0.000000001"),
        (17_500, "$0.000017500"),
        (7_654_321_999, "$7.654321999"),
        (225_000_000_000, "$225.000000000"),
        (-1, "-$0.000000001"),
    ],
)
def test_exact_filter_writes_nano_dollars_as_dollars(nanos: int, text: str) -> None:
    assert usd_exact(nanos) == text


async def _signed_in(gateway: AppHarness) -> int:
    account = await register_user(gateway, "alice")
    gateway.client.cookies.set(SESSION_COOKIE, account.token)
    async with gateway.state.sessions() as session:
        user_id = await session.scalar(select(User.id).where(User.username == "alice"))
    assert user_id is not None
    return user_id


async def test_a_tiny_request_cost_shows_six_decimals_and_the_exact_amount_on_hover(
    gateway: AppHarness,
) -> None:
    user_id = await _signed_in(gateway)
    request_id = f"req_{uuid.uuid4().hex}"
    async with transaction(gateway.state.sessions) as session:
        row = RequestLog(request_id=request_id, user_id=user_id, model="gpt-test", status_code=200)
        row.created_at, row.credits_cost_nanos = datetime(2026, 1, 15, 9, tzinfo=UTC), 17_500
        session.add(row)

    history = (await gateway.client.get("/dashboard/request-history")).text
    detail = (await gateway.client.get(f"/dashboard/request-history/{request_id}")).text

    assert '<td class="num" title="$0.000017500">$0.000018</td>' in history
    assert '<dd title="$0.000017500">$0.000018</dd>' in detail


async def test_balances_show_the_exact_amount_on_hover_never_raw_nano_dollars(gateway: AppHarness) -> None:
    await _signed_in(gateway)

    pages = [
        (await gateway.client.get(path)).text
        for path in ("/dashboard", "/dashboard/subscription", "/dashboard/request-history")
    ]

    assert '<dd title="$0.000000000">$0</dd>' in pages[0]
    assert 'title="$225.000000000">$225.00</span>' in pages[1]
    for html in pages:
        assert "nano" not in html.lower()
        assert not re.search(r'title="\d+"', html), "no raw integers in a title"


async def test_the_friend_key_page_shows_a_model_s_use_to_the_nano_dollar_past_float_precision(
    world: World,
) -> None:
    client, auth = world.gateway.client, world.user.auth
    await client.post("/api/user/friend-key", headers=auth)
    limits = {"modelLimits": [{"modelId": OPENAI_MODEL, "limitUsd": 1, "enabled": True}]}
    assert (await client.put("/api/user/friend-key/limits", headers=auth, json=limits)).status_code == 200
    # $100,000,000.000000001: a float holds 17 significant digits, so a trip through `usedUsd` loses the nano.
    async with transaction(world.state.sessions) as session:
        await session.execute(update(FriendKeyModelLimit).values(used_nanos=100_000_000_000_000_001))
    client.cookies.set(SESSION_COOKIE, world.user.token)

    html = (await client.get("/dashboard/friend-key")).text

    assert 'title="$100000000.000000001 / $1.000000000"' in html
