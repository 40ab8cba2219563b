"""`POST /v1/embeddings` (SPEC §6): models of kind `embedding`, billed `usage.prompt_tokens` × input price."""

from __future__ import annotations

import openai
import pytest
from proxy_world import OPENAI_MODEL, World
from responses_world import DEV_GRANT, credits, log_of

from trollllm.mockupstream.embeddings import DIMENSIONS
from trollllm.money import Money, TokenUsage, cost_of, parse_price_per_mtok
from trollllm.money import Prices as ModelPrices

EMBEDDING_MODEL = "embed-test"
PRICES = ModelPrices(parse_price_per_mtok("0.02"), parse_price_per_mtok(0))
TEXTS = ["the quick brown fox", "jumps over the lazy dog today"]


@pytest.fixture
async def embedding_world(world: World) -> World:
    await world.admin_call(
        "POST",
        "/api/admin/models",
        json={
            "modelId": EMBEDDING_MODEL,
            "provider": "openai",
            "upstreamModel": "text-embedding-3-small",
            "inputPricePerMTok": "0.02",
            "outputPricePerMTok": 0,
            "maxOutputTokens": 1,
            "kind": "embedding",
        },
    )
    return world


async def test_embeddings_are_billed_prompt_tokens_at_the_input_price(embedding_world: World) -> None:
    world = embedding_world
    async with world.openai() as client:
        raw = await client.embeddings.with_raw_response.create(model=EMBEDDING_MODEL, input=TEXTS)
    result = raw.parse()
    tokens = sum(len(text.split()) for text in TEXTS)
    cost = cost_of(TokenUsage(input_tokens=tokens), PRICES)
    assert [len(item.embedding) for item in result.data] == [DIMENSIONS, DIMENSIONS]
    assert result.model == EMBEDDING_MODEL and result.usage.prompt_tokens == tokens
    assert world.mock.requests[-1].body["model"] == "text-embedding-3-small"
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost
    assert await credits(world) == DEV_GRANT - cost
    row = await log_of(world, raw.headers["x-request-id"])
    assert (row.model, row.input_tokens, row.output_tokens) == (EMBEDDING_MODEL, tokens, 0)


async def test_a_chat_model_is_refused_on_embeddings_and_an_embedding_model_on_chat(
    embedding_world: World,
) -> None:
    async with embedding_world.openai() as client:
        with pytest.raises(openai.BadRequestError) as chat_on_embeddings:
            await client.embeddings.create(model=OPENAI_MODEL, input="hi")
        with pytest.raises(openai.BadRequestError) as embedding_on_chat:
            await client.chat.completions.create(
                model=EMBEDDING_MODEL, messages=[{"role": "user", "content": "hi"}]
            )
    assert chat_on_embeddings.value.body["field"] == "model"  # type: ignore[index]
    assert embedding_on_chat.value.body["field"] == "model"  # type: ignore[index]
    assert embedding_world.mock.request_count == 0
