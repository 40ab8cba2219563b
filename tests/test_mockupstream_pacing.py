"""The mock's paced streams (`chunk_delay_ms`): written from one shared timer, each whole and its own."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import openai
import orjson
import pytest

from trollllm.mockupstream import MockUpstream, reply_text


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def read_text(oai: openai.AsyncOpenAI, tokens: int, delay_ms: int) -> tuple[str, int]:
    stream = await oai.chat.completions.create(
        model="m",
        messages=user(f"[mock reply_tokens={tokens} chunk_delay_ms={delay_ms}]"),
        stream=True,
        stream_options={"include_usage": True},
    )
    text, completion_tokens = [], -1
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            completion_tokens = chunk.usage.completion_tokens
    return "".join(text), completion_tokens


async def test_paced_streams_with_their_own_gaps_each_arrive_whole_and_in_order(
    oai: openai.AsyncOpenAI,
) -> None:
    plans = [(3 + index % 7, 1 + index % 9) for index in range(40)]
    replies = await asyncio.gather(*(read_text(oai, tokens, delay) for tokens, delay in plans))
    assert replies == [(reply_text(tokens), tokens) for tokens, _ in plans]


async def test_a_paced_stream_takes_at_least_its_gaps(oai: openai.AsyncOpenAI) -> None:
    started = time.monotonic()
    await read_text(oai, 4, 40)
    # 4 content chunks, the finish chunk, the usage chunk and [DONE] after the first one: 6 gaps
    assert time.monotonic() - started >= 6 * 0.04


async def test_drop_after_cuts_a_paced_stream_after_that_many_frames(oai: openai.AsyncOpenAI) -> None:
    received: list[Any] = []
    stream = await oai.chat.completions.create(
        model="m", messages=user("[mock drop_after=3 chunk_delay_ms=5]"), stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 3


async def test_stop_cuts_a_paced_stream_at_once(mock: MockUpstream, oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model="m", messages=user("[mock reply_tokens=5 chunk_delay_ms=5000]"), stream=True
    )
    first = await anext(aiter(stream))
    assert first.choices[0].delta.role == "assistant"
    started = time.monotonic()
    await mock.stop()
    assert time.monotonic() - started < 1.5
    with pytest.raises(openai.APIConnectionError):
        async for _ in stream:
            pass


async def test_openai_content_chunks_are_compact_json_each_with_its_own_piece(mock: MockUpstream) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": user("[mock reply_tokens=5]"),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with httpx.AsyncClient(base_url=mock.url) as client:
        reply = await client.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"})
    frames = [line[6:].encode() for line in reply.text.split("\n") if line.startswith("data: {")]
    contents = []
    for frame in frames:
        chunk = orjson.loads(frame)
        assert orjson.dumps(chunk) == frame  # compact, as OpenAI writes them
        if chunk["choices"] and "content" in chunk["choices"][0]["delta"]:
            assert chunk["model"] == "gpt-4o-mini" and chunk["usage"] is None
            contents.append(chunk["choices"][0]["delta"]["content"])
    assert "".join(contents) == reply_text(5)


async def test_a_paced_gzip_stream_arrives_whole(mock: MockUpstream) -> None:
    body = {"model": "m", "messages": user("[mock gzip=1 chunk_delay_ms=2 reply_tokens=3]"), "stream": True}
    async with httpx.AsyncClient(base_url=mock.url) as client:
        reply = await client.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"})
    assert reply.headers["content-encoding"] == "gzip"
    assert reply.text.endswith("data: [DONE]\n\n")
    contents = [
        orjson.loads(line[6:])["choices"][0]["delta"].get("content", "")
        for line in reply.text.split("\n")
        if line.startswith("data: {")
    ]
    assert "".join(contents) == reply_text(3)
