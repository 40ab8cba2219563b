"""`/v1/responses` with the official OpenAI SDK on the native route (SPEC §6): answered as OpenAI answers,
forwarded as sent, billed exactly (cache hits at their price, reasoning as output), stored for its caller."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from proxy_world import OPENAI_MODEL, World
from responses_world import DEV_GRANT, credits, expected_cost, input_tokens, log_of

from trollllm.mockupstream import DEFAULT_REPLY_TOKENS, reply_text
from trollllm.money import Money

HELLO = "Say hello to the Responses API please"


def bearer(world: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.user.api_key}"}


def sent_upstream(world: World) -> dict[str, Any]:
    request = world.mock.requests[-1]
    assert request.path == "/v1/responses"
    body: dict[str, Any] = request.body
    return body


async def test_a_response_is_answered_natively_and_charged_exactly(world: World) -> None:
    async with world.openai() as client:
        raw = await client.responses.with_raw_response.create(model=OPENAI_MODEL, input=HELLO)
    response = raw.parse()
    upstream = sent_upstream(world)
    cost = expected_cost(upstream)
    assert response.output_text == reply_text(DEFAULT_REPLY_TOKENS)
    assert response.model == OPENAI_MODEL
    assert response.id.startswith("resp_") and response.store is True
    assert upstream["model"] == f"{OPENAI_MODEL}-upstream"
    assert upstream["store"] is False  # the gateway stores; the upstream account keeps nothing
    assert upstream["max_output_tokens"] == 4096
    assert response.usage is not None and response.usage.output_tokens == DEFAULT_REPLY_TOKENS
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost
    assert Money.from_usd(raw.headers["x-trollllm-balance-usd"]) == DEV_GRANT - cost
    assert await credits(world) == DEV_GRANT - cost
    row = await log_of(world, raw.headers["x-request-id"])
    assert (row.model, row.input_tokens, row.output_tokens) == (OPENAI_MODEL, input_tokens(upstream), 16)


async def test_unknown_fields_and_encrypted_reasoning_travel_untouched(world: World) -> None:
    async with world.openai() as client:
        first = await client.responses.create(
            model=OPENAI_MODEL,
            input=f"Think first [mock reasoning=7] {HELLO}",
            reasoning={"effort": "low", "summary": "auto"},
            extra_body={"vendor_flag": {"x": 1}},
        )
        reasoning = first.output[0]
        assert reasoning.type == "reasoning" and reasoning.encrypted_content
        assert sent_upstream(world)["vendor_flag"] == {"x": 1}
        assert "reasoning.encrypted_content" in sent_upstream(world)["include"]
        await client.responses.create(
            model=OPENAI_MODEL, input="And then?", previous_response_id=first.id, reasoning={"effort": "low"}
        )
    sent = sent_upstream(world)["input"]
    assert {**sent[1], "summary": []} == {
        **reasoning.model_dump(exclude_none=True),
        "summary": [],
    }  # byte for byte the item the client got, encrypted content included


async def test_reasoning_tokens_are_billed_as_output(world: World) -> None:
    async with world.openai() as client:
        raw = await client.responses.with_raw_response.create(
            model=OPENAI_MODEL, input=f"[mock reasoning=40] {HELLO}", reasoning={"effort": "high"}
        )
    response = raw.parse()
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens == 40
    cost = expected_cost(sent_upstream(world), output=DEFAULT_REPLY_TOKENS + 40)
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost


async def test_cache_hits_are_billed_at_the_cache_hit_price_not_again_as_input(world: World) -> None:
    async with world.openai() as client:
        raw = await client.responses.with_raw_response.create(
            model=OPENAI_MODEL, input=f"[mock cached=300] {HELLO}"
        )
    response = raw.parse()
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 300
    assert response.usage.input_tokens == input_tokens(sent_upstream(world)) + 300
    cost = expected_cost(sent_upstream(world), hit=300)
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost
    row = await log_of(world, raw.headers["x-request-id"])
    assert (row.input_tokens, row.cache_hit_tokens) == (input_tokens(sent_upstream(world)), 300)


async def test_a_stream_ends_with_its_cost_beside_the_usage(world: World) -> None:
    async with world.openai() as client, client.responses.stream(model=OPENAI_MODEL, input=HELLO) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert final.output_text == reply_text(DEFAULT_REPLY_TOKENS)
    assert final.model == OPENAI_MODEL
    cost = expected_cost(sent_upstream(world))
    assert sent_upstream(world)["stream"] is True
    assert final.model_extra is not None and Money.from_usd(final.model_extra["cost"]) == cost
    assert await credits(world) == DEV_GRANT - cost


async def test_a_function_tool_round_trip_by_previous_response_id(world: World) -> None:
    tools: Any = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": False}]
    async with world.openai() as client:
        first = await client.responses.create(
            model=OPENAI_MODEL, input=f"[mock tool_calls=1 reply_tokens=0] {HELLO}", tools=tools
        )
        call = first.output[-1]
        assert call.type == "function_call" and call.name == "lookup"
        output = {"type": "function_call_output", "call_id": call.call_id, "output": "42 is the answer"}
        raw = await client.responses.with_raw_response.create(
            model=OPENAI_MODEL, input=[output], previous_response_id=first.id, tools=tools
        )
    second = raw.parse()
    sent = sent_upstream(world)
    assert [item.get("type", "message") for item in sent["input"]] == [
        "message",
        "function_call",
        "function_call_output",
    ]
    assert sent["input"][1]["call_id"] == call.call_id and "previous_response_id" not in sent
    assert second.output_text == reply_text(DEFAULT_REPLY_TOKENS)
    assert second.previous_response_id == first.id
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == expected_cost(sent)


async def test_items_passed_back_with_store_false_continue_the_conversation(world: World) -> None:
    async with world.openai() as client:
        first = await client.responses.create(model=OPENAI_MODEL, input=HELLO, store=False)
        assert first.store is False
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(first.id)
        items: Any = [
            {"role": "user", "content": HELLO},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"role": "user", "content": "Once more"},
        ]
        raw = await client.responses.with_raw_response.create(model=OPENAI_MODEL, input=items, store=False)
    assert len(sent_upstream(world)["input"]) == 3
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == expected_cost(sent_upstream(world))


async def test_a_stored_response_is_read_and_deleted_by_its_caller_only(world: World) -> None:
    from helpers import register_user

    async with world.openai() as client:
        created = await client.responses.create(model=OPENAI_MODEL, input=HELLO)
        stored = await client.responses.retrieve(created.id)
        assert stored.output_text == created.output_text and stored.usage == created.usage
        other = await register_user(world.gateway, "mallory")
        await world.admin_call("PATCH", "/api/admin/users/mallory", json={"plan": "dev"})
        async with world.openai(other.api_key) as stranger:
            with pytest.raises(openai.NotFoundError):
                await stranger.responses.retrieve(created.id)
            with pytest.raises(openai.NotFoundError) as refused:
                await stranger.responses.create(
                    model=OPENAI_MODEL, input="hi", previous_response_id=created.id
                )
            assert refused.value.body["field"] == "previous_response_id"  # type: ignore[index]
        await client.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(created.id)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}, "tools[0].type"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"conversation": "conv_1"}, "conversation"),
    ],
)
async def test_refused_fields_are_named_before_anything_is_held(
    world: World, extra: dict[str, Any], field: str
) -> None:
    body = {"model": OPENAI_MODEL, "input": HELLO, **extra}
    reply = await world.gateway.client.post("/v1/responses", json=body, headers=bearer(world))
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["field"] == field
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert world.mock.request_count == 0
    assert await credits(world) == DEV_GRANT


async def test_a_stored_response_continues_on_either_database(any_world: World) -> None:
    world = any_world
    async with world.openai() as client:
        first = await client.responses.create(model=OPENAI_MODEL, input=HELLO)
        second = await client.responses.create(
            model=OPENAI_MODEL, input="Go on", previous_response_id=first.id
        )
        assert (await client.responses.retrieve(second.id)).previous_response_id == first.id
        await client.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(first.id)
    assert len(sent_upstream(world)["input"]) == 3
