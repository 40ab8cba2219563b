"""A `/v1/responses` stream the gateway cuts (the upstream broke, the request's deadline passed) ends, on
every route, in `response.failed`: the client sees a failed response carrying the error, the usage billed
for what was delivered (SPEC §4) and its cost, and it is charged exactly that."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import make_settings
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World, build_world, serve
from responses_world import CHAT_MODEL, DEV_GRANT, add_chat_model, credits, log_of

from trollllm.clock import ManualClock
from trollllm.mockupstream import MockUpstream, count_input_tokens
from trollllm.money import Money, TokenUsage, cost_of

ROUTES = {"native": OPENAI_MODEL, "chat": CHAT_MODEL, "messages": ANTHROPIC_MODEL}
HELLO = "Say hello and then break please"


async def _stream_events(world: World, model: str, prompt: str) -> tuple[list[Any], str]:
    """The events the official SDK yields for a streamed response, and the request's id."""
    async with world.openai() as client:
        raw = await client.responses.with_raw_response.create(model=model, input=prompt, stream=True)
        events = [event async for event in raw.parse()]
    return events, raw.headers["x-request-id"]


async def _expect_failed_and_charged(
    world: World, model: str, events: list[Any], request_id: str, status: int, code: str
) -> None:
    failed = events[-1]
    assert failed.type == "response.failed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    response = failed.response
    assert response.status == "failed" and response.model == model
    assert response.error is not None and response.error.code == code
    deltas = sum(event.type == "response.output_text.delta" for event in events)
    assert deltas > 0
    assert response.usage is not None and response.usage.output_tokens == deltas
    sent = world.mock.requests[-1]
    # Anthropic reports the input at `message_start`; the other routes report nothing before their end.
    expected_input = count_input_tokens(sent.body) if model == ANTHROPIC_MODEL else 0
    assert response.usage.input_tokens == expected_input
    catalogued = await world.state.catalog.get(model)
    assert catalogued is not None
    cost = cost_of(TokenUsage(input_tokens=expected_input, output_tokens=deltas), catalogued.prices)
    assert cost > Money.ZERO
    assert response.model_extra is not None and Money.from_usd(response.model_extra["cost"]) == cost
    row = await log_of(world, request_id)
    assert (row.status_code, row.output_tokens, Money(row.credits_cost_nanos)) == (status, deltas, cost)
    assert await credits(world) == DEV_GRANT - cost


@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_a_stream_whose_upstream_breaks_ends_in_response_failed_charged_what_was_delivered(
    world: World, route: str
) -> None:
    model = ROUTES[route]
    if model == CHAT_MODEL:
        await add_chat_model(world)
    events, request_id = await _stream_events(world, model, f"[mock drop_after=9] {HELLO}")
    await _expect_failed_and_charged(world, model, events, request_id, 502, "upstream_error")


@pytest.mark.parametrize("route", ["native", "messages"])
async def test_a_stream_past_its_deadline_ends_in_response_failed_charged_what_was_delivered(
    tmp_path: Path, clock: ManualClock, embedded_database_url: str, route: str
) -> None:
    settings = make_settings(tmp_path, embedded_database_url, upstream_total_timeout_s=1.0)
    model = ROUTES[route]
    async with MockUpstream() as mock, serve(settings, clock) as served:
        world = await build_world(served[0], served[1], mock)
        prompt = f"slow [mock reply_tokens=40 chunk_delay_ms=100] {HELLO}"
        events, request_id = await _stream_events(world, model, prompt)
        await _expect_failed_and_charged(world, model, events, request_id, 504, "upstream_timeout")
