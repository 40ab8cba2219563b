"""The served connection's writes: a response's first writes of one loop turn leave in one system call; once
it has begun to leave (a stream), each later write leaves at once; the next request coalesces again."""

from __future__ import annotations

import asyncio
from typing import cast

from trollllm.serving import CoalescingTransport


class RecordingTransport:
    """What a transport was asked to write, one entry per system call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing


def wrapped() -> tuple[CoalescingTransport, RecordingTransport]:
    inner = RecordingTransport()
    transport = CoalescingTransport(cast(asyncio.Transport, inner), asyncio.get_running_loop())
    return transport, inner


async def next_turn() -> None:
    await asyncio.sleep(0)


async def test_a_response_written_in_one_turn_leaves_in_one_write() -> None:
    transport, inner = wrapped()
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"body")
    assert inner.writes == []
    await next_turn()
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]


async def test_once_a_response_has_begun_to_leave_its_writes_leave_at_once() -> None:
    transport, inner = wrapped()
    transport.write(b"head")
    await next_turn()
    transport.write(b"event 1")
    transport.write(b"event 2")
    assert inner.writes == [b"head", b"event 1", b"event 2"]


async def test_the_next_request_on_the_connection_coalesces_again() -> None:
    transport, inner = wrapped()
    transport.write(b"first response")
    await next_turn()
    transport.coalesce()
    transport.write(b"head")
    transport.write(b"body")
    await next_turn()
    assert inner.writes == [b"first response", b"headbody"]


async def test_nothing_is_written_to_a_closing_connection() -> None:
    transport, inner = wrapped()
    transport.write(b"head")
    await next_turn()
    inner.closing = True
    transport.write(b"event")
    assert inner.writes == [b"head"]
