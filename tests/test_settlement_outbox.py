"""A settlement the database refuses is kept in the outbox and replayed: 0 nano-USD lost (issue 11, defect 9).

The database failure is real: while the mock upstream takes its time, the request log table is renamed
away, so the settlement's transaction fails on the database and rolls back whole.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from proxy_world import OPENAI_MODEL, World
from sqlalchemy import select, text

from trollllm.accounts.tables import User
from trollllm.billing.records import UNSETTLED
from trollllm.billing.sweeper import release_expired_holds
from trollllm.mockupstream import count_input_tokens
from trollllm.money import Money, Prices, TokenUsage, cost_of, parse_price_per_mtok, usd_text
from trollllm.settings import HOLD_TTL
from trollllm.usage.tables import RequestLog

PRICES = Prices(parse_price_per_mtok(5), parse_price_per_mtok(25))
_MESSAGES = [{"role": "user", "content": "take your time [mock delay_ms=700 reply_tokens=12]"}]
_COST = cost_of(TokenUsage(count_input_tokens({"messages": _MESSAGES}), 12), PRICES)


async def _balance(world: World) -> tuple[Money, Money]:
    """(credits + refCredits, held) of the user."""
    async with world.state.sessions() as session:
        user = await session.scalar(select(User).where(User.username == world.user.username))
        assert user is not None
        return Money(user.credits_nanos + user.ref_credits_nanos), Money(user.held_nanos)


async def _rename_request_logs(world: World, old: str, new: str) -> None:
    async with world.state.engine.begin() as connection:
        await connection.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


async def _call_while_the_database_fails(world: World) -> Any:
    """An SDK call whose settlement meets a request log table that is not there."""
    async with world.openai() as client:
        call = asyncio.create_task(
            client.chat.completions.with_raw_response.create(
                model=OPENAI_MODEL, messages=_MESSAGES, max_tokens=50
            )
        )
        while world.mock.request_count == 0:  # admitted and held; the upstream now waits 700 ms
            await asyncio.sleep(0.01)
        await _rename_request_logs(world, "request_logs", "request_logs_away")
        try:
            return await call
        finally:
            await _rename_request_logs(world, "request_logs_away", "request_logs")


async def _log_row(world: World, request_id: str) -> RequestLog | None:
    async with world.state.sessions() as session:
        return await session.scalar(select(RequestLog).where(RequestLog.request_id == request_id))


async def test_the_client_gets_its_answer_when_settlement_fails_after_the_upstream_answered(
    any_world: World,
) -> None:
    raw = await _call_while_the_database_fails(any_world)
    assert raw.http_response.status_code == 200
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-trollllm-cost-usd"] == usd_text(_COST)
    assert "x-trollllm-balance-usd" not in raw.headers  # not charged yet: no balance to tell
    assert any_world.state.outbox.depth() == 1


async def test_a_settlement_the_database_refused_is_replayed_from_the_outbox(any_world: World) -> None:
    before, _ = await _balance(any_world)
    raw = await _call_while_the_database_fails(any_world)
    request_id = raw.headers["x-request-id"]
    credits, held = await _balance(any_world)
    assert credits == before and held > Money.ZERO  # nothing charged; the hold stays until the replay

    assert await any_world.state.outbox.replay(any_world.state.db) == 1

    assert await _balance(any_world) == (before - _COST, Money.ZERO)  # 0 nano-USD lost
    row = await _log_row(any_world, request_id)
    assert row is not None and row.is_success and Money(row.credits_cost_nanos) == _COST
    assert any_world.state.outbox.depth() == 0


async def test_replaying_the_outbox_twice_charges_once(any_world: World) -> None:
    before, _ = await _balance(any_world)
    await _call_while_the_database_fails(any_world)
    outbox = any_world.state.outbox
    assert await outbox.replay(any_world.state.db) == 1
    assert await outbox.replay(any_world.state.db) == 0
    assert await _balance(any_world) == (before - _COST, Money.ZERO)


async def test_an_entry_already_settled_is_dropped_from_the_outbox_without_charging(world: World) -> None:
    before, _ = await _balance(world)
    await _call_while_the_database_fails(world)
    outbox = world.state.outbox
    (entry_file,) = outbox.directory.glob("settlements-*.jsonl")
    copy = entry_file.read_bytes()
    assert await outbox.replay(world.state.db) == 1
    entry_file.write_bytes(copy)  # as if a crash came between the commit and the file's rewrite
    assert await outbox.replay(world.state.db) == 0
    assert outbox.depth() == 0
    assert await _balance(world) == (before - _COST, Money.ZERO)


async def test_an_entry_the_database_still_refuses_stays_for_the_next_replay(world: World) -> None:
    await _call_while_the_database_fails(world)
    await _rename_request_logs(world, "request_logs", "request_logs_away")
    try:
        assert await world.state.outbox.replay(world.state.db) == 0
    finally:
        await _rename_request_logs(world, "request_logs_away", "request_logs")
    assert world.state.outbox.depth() == 1
    assert await world.state.outbox.replay(world.state.db) == 1


async def test_the_sweeper_logs_a_hold_it_releases_as_unsettled(world: World, clock: Any) -> None:
    raw = await _call_while_the_database_fails(world)
    clock.advance((HOLD_TTL + timedelta(seconds=1)).total_seconds())
    assert await release_expired_holds(world.state.sessions, clock.now()) == 1
    row = await _log_row(world, raw.headers["x-request-id"])
    assert row is not None
    assert (row.error_type, row.status_code, row.is_success) == (UNSETTLED, 0, False)
    assert row.credits_cost_nanos == 0


async def test_a_replay_after_the_sweeper_released_the_hold_charges_and_replaces_the_unsettled_row(
    any_world: World, clock: Any
) -> None:
    before, _ = await _balance(any_world)
    raw = await _call_while_the_database_fails(any_world)
    clock.advance((HOLD_TTL + timedelta(seconds=1)).total_seconds())
    await release_expired_holds(any_world.state.sessions, clock.now())
    assert await any_world.state.outbox.replay(any_world.state.db) == 1
    assert await _balance(any_world) == (before - _COST, Money.ZERO)
    row = await _log_row(any_world, raw.headers["x-request-id"])
    assert row is not None and row.is_success and row.error_type is None
    assert Money(row.credits_cost_nanos) == _COST
