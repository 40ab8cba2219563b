"""Paced streams (`chunk_delay_ms`): every open stream's due frames written from one shared timer.

A sleep per stream per frame costs a timer, a future and a task wake-up for each frame (Python 3.11's
`wait_for` even a task); with thousands of long streams open the mock's CPU went there rather than to
answering (issue 26). Here a stream's handler hands its remaining frames over and awaits one future; a
single timer, armed for the earliest due frame, writes every frame due by then straight to its stream's
transport, already framed for the wire (chunked transfer coding), and schedules that stream's next frame
`chunk_delay_ms` after the write. Due times are rounded up to the millisecond, so streams due in the same
millisecond leave in one wake-up and no gap is shorter than the one asked.

The frames skip aiohttp's writer and its drain: a stream's whole reply is already in memory, so a client
that stops reading holds at most that in the transport's buffer.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math

from aiohttp import web

_MS = 1000.0


def chunked(frame: bytes) -> bytes:
    """`frame` as one chunk of HTTP/1.1's chunked transfer coding."""
    return b"%x\r\n%b\r\n" % (len(frame), frame)


def wire_frames(response: web.StreamResponse, frames: list[bytes]) -> list[bytes]:
    """The frames as they go on the wire after `response`'s (prepared) head: chunked, or else as they are."""
    if response.headers.get("Transfer-Encoding", "").lower() == "chunked":
        # (an empty frame, as gzip's last flush may be, stays empty: a chunk of 0 bytes ends the body)
        return [chunked(frame) if frame else b"" for frame in frames]
    return frames


class _PacedStream:
    __slots__ = ("delay_s", "done", "drop_at", "frames", "next", "transport")

    def __init__(
        self,
        transport: asyncio.Transport,
        frames: list[bytes],
        delay_s: float,
        drop_at: int | None,
        done: asyncio.Future[bool],
    ) -> None:
        self.transport = transport
        self.frames = frames
        self.delay_s = delay_s
        self.drop_at = len(frames) if drop_at is None else drop_at
        self.done = done
        self.next = 0


class Pacer:
    """The shared timer of one server run's paced streams (see the module docstring)."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, _PacedStream]] = []
        self._order = itertools.count()  # ties in due time: first scheduled, first written
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = math.inf
        self._closed = False

    async def send(
        self, transport: asyncio.Transport, frames: list[bytes], delay_ms: int, drop_at: int | None
    ) -> bool:
        """Write `frames` (wire-ready) `delay_ms` apart, the first one `delay_ms` from now; True once all
        are written. False when the connection was aborted first: once `drop_at` frames are written (the
        `drop_after` fault; at once for 0), the client gone, or the server stopping."""
        if not frames:
            return True
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        if self._closed or (drop_at is not None and drop_at <= 0):
            transport.abort()
            return False
        stream = _PacedStream(transport, frames, delay_ms / _MS, drop_at, done)
        self._schedule(loop, stream, loop.time())
        return await done

    def close(self) -> None:
        """The server is stopping: every paced stream is cut off now."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due, self._due = self._due, []
        for _, _, stream in due:
            self._end(stream, ok=False)

    def _schedule(self, loop: asyncio.AbstractEventLoop, stream: _PacedStream, now: float) -> None:
        when = math.ceil((now + stream.delay_s) * _MS) / _MS
        heapq.heappush(self._due, (when, next(self._order), stream))
        if when < self._armed_for:
            if self._timer is not None:
                self._timer.cancel()
            self._armed_for = when
            self._timer = loop.call_at(when, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._armed_for = math.inf
        due = self._due
        ready = loop.time() + 1e-6  # float rounding of `when`
        pop, push = heapq.heappop, heapq.heappush
        written: list[tuple[float, int, _PacedStream]] = []
        while due and due[0][0] <= ready:
            stream = pop(due)[2]
            transport = stream.transport
            if transport.is_closing():  # the client went away
                self._end(stream, ok=False)
                continue
            index = stream.next
            transport.write(stream.frames[index])
            stream.next = index = index + 1
            if index == len(stream.frames):
                self._end(stream, ok=True)
            elif index >= stream.drop_at:
                self._end(stream, ok=False)
            else:  # the next one a gap after this write (a long tick's last writes are late)
                written.append((math.ceil((loop.time() + stream.delay_s) * _MS) / _MS, 0, stream))
        for when, _, stream in written:  # after the loop: a 0 ms delay must not be written twice now
            push(due, (when, next(self._order), stream))
        if due:
            self._armed_for = due[0][0]
            self._timer = loop.call_at(self._armed_for, self._tick, loop)

    @staticmethod
    def _end(stream: _PacedStream, *, ok: bool) -> None:
        if not ok:
            stream.transport.abort()
        if not stream.done.done():
            stream.done.set_result(ok)
