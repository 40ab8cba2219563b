"""Every request has a total deadline below its hold's lifetime (issue 11, defects 8 and 10)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest
from conftest import make_settings
from proxy_world import OPENAI_MODEL, World, build_world, serve
from pydantic import ValidationError
from sqlalchemy import func, select

from trollllm.billing.tables import Hold, LedgerEntry
from trollllm.clock import ManualClock
from trollllm.mockupstream import MockUpstream
from trollllm.settings import HOLD_TTL, SETTLE_MARGIN_S, Settings
from trollllm.usage.tables import RequestLog


async def _only_log_row(world: World) -> RequestLog:
    """The request's log row, once its settlement (which follows the error event) has committed."""
    for _ in range(200):
        async with world.state.sessions() as session:
            row = await session.scalar(select(RequestLog))
        if row is not None:
            return row
        await asyncio.sleep(0.02)
    raise AssertionError("the request was never settled")


async def test_a_stream_past_its_total_deadline_ends_in_a_timeout_error_and_is_charged_what_it_delivered(
    tmp_path: Path, clock: ManualClock, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url, upstream_total_timeout_s=1.0)
    async with MockUpstream() as mock, serve(settings, clock) as served:
        world = await build_world(served[0], served[1], mock)
        received: list[str] = []
        async with world.openai() as client:
            stream = await client.chat.completions.create(
                model=OPENAI_MODEL,
                messages=[{"role": "user", "content": "slow [mock reply_tokens=40 chunk_delay_ms=100]"}],
                stream=True,
                max_tokens=100,
            )
            with pytest.raises(openai.APIError, match=r"timed out|deadline"):
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        received.append(chunk.choices[0].delta.content)
        row = await _only_log_row(world)
        async with world.state.sessions() as session:
            charges = select(func.sum(LedgerEntry.credits_delta_nanos))
            charged = await session.scalar(charges.where(LedgerEntry.request_id == row.request_id))
            holds = await session.scalar(select(func.count()).select_from(Hold))
    assert (row.status_code, row.error_type) == (504, "upstream_timeout")
    assert 0 < len(received) < 40
    assert len(received) <= row.output_tokens < 40  # what was delivered, not the whole answer
    assert -int(charged or 0) == row.credits_cost_nanos > 0
    assert holds == 0


def test_a_total_deadline_that_leaves_no_time_to_settle_before_the_hold_expires_is_refused() -> None:
    too_long = HOLD_TTL.total_seconds() - SETTLE_MARGIN_S + 1
    with pytest.raises(ValidationError, match="TROLLLLM_UPSTREAM_TOTAL_TIMEOUT_S"):
        Settings(upstream_total_timeout_s=too_long)


def test_the_default_total_deadline_is_below_the_hold_lifetime() -> None:
    assert Settings().upstream_total_timeout_s <= HOLD_TTL.total_seconds() - SETTLE_MARGIN_S
