"""How a relayed stream leaves for its client (issue 26): the events that arrive with the end of the
upstream's body leave with the held usage event, in the stream's last write, not in a write of their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from proxy_world import OPENAI_MODEL, World

_UPSTREAM_MODEL = f"{OPENAI_MODEL}-upstream"


def _event(delta: dict[str, object], *, finish: str | None = None) -> bytes:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": _UPSTREAM_MODEL,
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": None}  # fmt: skip
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


_FIRST = _event({"role": "assistant", "content": ""})
_REST = [
    *(_event({"content": word}) for word in ("one", " two", " three")),
    _event({}, finish="stop"),
    b"data: "
    + orjson.dumps(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": _UPSTREAM_MODEL,
            "choices": [],
            "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7},
        }
    )
    + b"\n\n",
    b"data: [DONE]\n\n",
]


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class TwoWriteUpstream:
    """An OpenAI-format provider on loopback answering a stream in two writes: the head with the first event,
    then, a moment later, every other event together with the end of the body."""

    def __init__(self) -> None:
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> TwoWriteUpstream:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            + _http_chunk(_FIRST)
        )
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"".join(map(_http_chunk, _REST)) + b"0\r\n\r\n")
        await writer.drain()
        writer.close()


async def _body_chunks(world: World) -> list[bytes]:
    """A streamed chat completion through the gateway, read raw: its body's HTTP chunks, one per write."""
    host, port = world.base_url.removeprefix("http://").rsplit(":", 1)
    body = orjson.dumps(
        {
            "model": OPENAI_MODEL,
            "messages": [{"role": "user", "content": "count"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {world.user.api_key}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    chunks = []
    while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
        chunks.append((await reader.readexactly(size + 2))[:-2])
    writer.close()
    return chunks


@pytest.fixture
async def two_write_world(world: World) -> AsyncIterator[World]:
    async with TwoWriteUpstream() as upstream:
        await world.admin_call("PATCH", "/api/admin/factory-keys/1", json={"baseUrl": upstream.url})
        yield world


async def test_events_that_come_with_the_end_leave_with_the_usage_in_the_last_write(
    two_write_world: World,
) -> None:
    chunks = await _body_chunks(two_write_world)
    assert len(chunks) == 2  # the first event at once; the rest, usage and [DONE] in the last write
    first, last = chunks
    assert b'"role":"assistant"' in first and b"[DONE]" not in first
    assert last.index(b'" three"') < last.index(b'"usage":{') < last.index(b"data: [DONE]")
    assert b'"cost":' in last and last.endswith(b"data: [DONE]\n\n")
    assert _UPSTREAM_MODEL.encode() not in first + last  # renamed in every event, the held ones too
