"""The long-streams cell's client: one streaming request per connection, counting token events as they arrive.

`bench/long_streams.py` opens N of these at once. Each asks the mock (its `chunk_delay_ms` and `reply_tokens`
controls, in the prompt) for `TOKENS` tokens with its own gap between them, spread evenly over
`GAP_MIN_MS`-`GAP_MAX_MS`; the OpenAI wire format.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import cast

import orjson

TOKENS = 60
GAP_MIN_MS = 50
GAP_MAX_MS = 200
TOKEN_MARK = b'"delta":{"content":"'
DONE_MARK = b"data: [DONE]"
_CARRIED = max(len(DONE_MARK), len(TOKEN_MARK)) - 1


def asked_gap_ms(index: int) -> int:
    """Stream `index`'s gap between tokens: evenly spread over GAP_MIN_MS..GAP_MAX_MS."""
    return GAP_MIN_MS + (index * 37) % (GAP_MAX_MS - GAP_MIN_MS + 1)


@dataclass(slots=True)
class StreamRecord:
    """What one stream gave."""

    asked_ms: int
    sent: float = 0.0
    token_times: list[float] = field(default_factory=list)
    done: bool = False
    error: str | None = None


class StreamClient(asyncio.Protocol):
    """One streaming request on its own connection; counts and timestamps token events as they arrive.

    At 2,000 streams the client reads ~16,000 times a second on the same 2 cores as the servers it measures,
    so a read of the body costs a few byte searches and nothing else: a marker is only carried over to the
    next read when this one does not end at the end of a chunk (`\r\n`, in no marker).
    """

    __slots__ = (
        "_error_body",
        "_finished",
        "_head",
        "_payload",
        "_record",
        "_status",
        "_tail",
        "_times",
        "transport",
    )

    def __init__(self, payload: bytes, record: StreamRecord, finished: asyncio.Future[None]) -> None:
        self._payload = payload
        self._record = record
        self._times = record.token_times
        self._finished = finished
        self._head = bytearray()
        self._status = 0
        self._tail = b""
        self._error_body = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._record.sent = time.perf_counter()
        self.transport.write(self._payload)

    def data_received(self, data: bytes) -> None:
        if self._status != 200:
            if not self._status:
                now = time.perf_counter()
                self._head += data
                end = self._head.find(b"\r\n\r\n")
                if end < 0:
                    return
                self._status = int(self._head[9:12])
                data = bytes(self._head[end + 4 :])
                if self._status == 200:
                    self._body(data, now)
                    return
            self._error_body += data
            return
        self._body(data, time.perf_counter())

    def _body(self, data: bytes, now: float) -> None:
        if self._tail:
            data = self._tail + data
        count = data.count(TOKEN_MARK)
        if count == 1:
            self._times.append(now)
        elif count:
            self._times.extend([now] * count)
        if b'"error"' in data:
            self._record.error = f"error event: {data[-200:]!r}"
        if DONE_MARK in data:
            self._record.done = True
            if self.transport is not None:
                self.transport.close()
        self._tail = b"" if data.endswith(b"\r\n") else data[-_CARRIED:]

    def connection_lost(self, exc: Exception | None) -> None:
        record = self._record
        if self._status and self._status != 200:
            record.error = f"HTTP {self._status}: {bytes(self._error_body[:200])!r}"
        elif not record.done and record.error is None:
            record.error = f"connection closed before the end ({len(record.token_times)} tokens): {exc!r}"
        if not self._finished.done():
            self._finished.set_result(None)


def request_bytes(host: str, port: int, key: str, model: str, asked_ms: int) -> bytes:
    """The HTTP/1.1 request of one long stream (OpenAI format)."""
    prompt = f"[mock reply_tokens={TOKENS} chunk_delay_ms={asked_ms}] a long stream for the bench"
    body = orjson.dumps(
        {
            "model": model,
            "stream": True,
            "max_tokens": TOKENS + 40,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": prompt}],
        }
    )
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body
