"""A lean closed-loop HTTP/1.1 load generator: N workers, one keep-alive connection each.

Two clients with the same measurements: ``raw`` (an ``asyncio.Protocol`` that writes pre-encoded
requests and parses status, ``Content-Length`` and chunked bodies by hand; the default, several
times cheaper per request) and ``aiohttp`` (one ``ClientSession`` with a shared connector), kept to
check that the raw client measures the same thing. Latency runs from writing the request to the
last body byte; time to first byte (TTFB) runs to the first byte of the *body* (not the headers).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import aiohttp

PROGRESS_EVERY = 1000
"""`run_cell` calls its ``on_progress`` hook each time this many more requests have completed."""
WARMUP_MAX_S = 10.0
"""A warm-up stops after this long even if it has not sent all its requests (a slow target)."""


@dataclass(frozen=True, slots=True)
class Target:
    """One kind of request: where it goes, its bytes, and how to tell a complete answer.

    The targets of one cell share ``host`` and ``port`` (a worker keeps its connection across them).
    """

    host: str
    port: int
    path: str
    headers: dict[str, str]
    body: bytes
    done_marker: bytes  # must occur in the body of a good answer (the end of a stream, `usage`, ...)
    error_marker: bytes = b'"error"'  # must not occur (a Response has `"error":null`; its own: `"error":{`)

    def wire_bytes(self) -> bytes:
        """The whole HTTP/1.1 request, encoded once."""
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        lines += [f"Content-Length: {len(self.body)}", "", ""]
        return "\r\n".join(lines).encode() + self.body


@dataclass(slots=True)
class Tally:
    """What the measured requests of one cell gave."""

    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    ttfbs: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def fail(self, why: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(why[:300])


class _Response:
    __slots__ = ("body", "first_byte", "status")

    def __init__(self) -> None:
        self.status = 0
        self.body = bytearray()
        self.first_byte = 0.0


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.started = 0.0  # perf_counter of the request in flight, 0 when idle
        self._buf = bytearray()
        self._waiter: asyncio.Future[_Response] | None = None
        self._response = _Response()
        self._state = "head"
        self._remaining = 0
        self._keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    async def send(self, payload: bytes) -> _Response:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._response = _Response()
        self._state = "head"
        self.transport.write(payload)
        return await self._waiter

    def _finish(self, body: bytearray) -> None:
        self._state = "done"
        self._response.body = body
        if not self._keep_alive and self.transport is not None:
            self.transport.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(self._response)

    def data_received(self, data: bytes) -> None:
        # Kept cheap per event: a stream is ~20 events, so bodies are only appended here and
        # de-chunked once, when the bytes end like a complete chunked body.
        buf = self._buf
        buf += data
        if self._state == "head":
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(buf[:end]).lower().split(b"\r\n")
            del buf[: end + 4]
            self._response.status = int(lines[0][9:12])
            headers = dict(line.split(b":", 1) for line in lines[1:] if b":" in line)
            self._keep_alive = headers.get(b"connection", b"").strip() != b"close"
            if b"chunked" in headers.get(b"transfer-encoding", b""):
                self._state = "chunked"
            else:
                self._remaining = int(headers.get(b"content-length", b"0"))
                self._state = "length"
        elif self._state == "done":  # bytes nobody asked for
            buf.clear()
            return
        if buf and not self._response.first_byte:
            self._response.first_byte = time.perf_counter()
        if self._state == "length":
            if len(buf) >= self._remaining:
                self._buf = bytearray()
                self._finish(buf)
        elif buf.endswith(b"\r\n\r\n"):  # maybe the last chunk and the end of the trailers
            body = _dechunk(buf)
            if body is not None:
                self._buf = bytearray()
                self._finish(body)


def _dechunk(raw: bytearray) -> bytearray | None:
    """The payload of a chunked body, or ``None`` while its last (empty) chunk has not arrived."""
    body = bytearray()
    pos = 0
    while True:
        end = raw.find(b"\r\n", pos)
        if end < 0:
            return None
        size = int(bytes(raw[pos:end]).split(b";")[0], 16)
        pos = end + 2
        if size == 0:
            return body  # the caller saw the blank line that ends the trailers
        if pos + size + 2 > len(raw):
            return None
        body += raw[pos : pos + size]
        pos += size + 2


def _check(status: int, body: bytes | bytearray, marker: bytes, error_marker: bytes) -> str | None:
    """Why an answer is not a success, or ``None``. Stream errors travel inside a 200 stream."""
    if not 200 <= status < 300:
        return f"HTTP {status}: {bytes(body[:200])!r}"
    if marker not in body or error_marker in body:
        return f"HTTP {status} but incomplete or error body: {bytes(body[-200:])!r}"
    return None


class _Run:
    """The shared request counter and clock of one phase (warm-up or measured) of a cell."""

    def __init__(self, targets: Sequence[Target], total: int, deadline: float, tally: Tally | None) -> None:
        self.targets = targets
        self.payloads = [target.wire_bytes() for target in targets]
        self.total = total
        self.deadline = deadline
        self.tally = tally
        self.issued = 0
        self.completed = 0
        self.on_completed: Callable[[int], None] | None = None
        # One lane per server (host, port): worker i keeps to lane i % lanes, so its keep-alive connection
        # always goes to the server its requests are for (several gateway instances: connections spread).
        servers: dict[tuple[str, int], list[int]] = {}
        for index, target in enumerate(targets):
            servers.setdefault((target.host, target.port), []).append(index)
        self.lanes = list(servers.values())
        self._lane_issued = [0] * len(self.lanes)

    def next_target(self, worker: int = 0) -> tuple[Target, bytes] | None:
        """The next request for `worker` to send, or ``None`` when the phase is over."""
        if self.issued >= self.total or (self.deadline and time.perf_counter() >= self.deadline):
            return None
        lane = worker % len(self.lanes)
        indices = self.lanes[lane]
        index = indices[self._lane_issued[lane] % len(indices)]
        self._lane_issued[lane] += 1
        self.issued += 1
        return self.targets[index], self.payloads[index]

    def record(self, started: float, first_byte: float, finished: float, error: str | None) -> None:
        self.completed += 1
        if self.tally is not None:
            if error is None:
                self.tally.latencies.append(finished - started)
                self.tally.ttfbs.append((first_byte or finished) - started)
            else:
                self.tally.fail(error)
        if self.on_completed is not None:
            self.on_completed(self.completed)


async def _raw_worker(run: _Run, slot: list[_Connection | None], worker: int) -> None:
    loop = asyncio.get_running_loop()
    while (picked := run.next_target(worker)) is not None:
        target, payload = picked
        started = time.perf_counter()
        connection = slot[0]
        try:
            if connection is None or connection.closed:
                _, connection = await loop.create_connection(_Connection, target.host, target.port)
                slot[0] = connection
            connection.started = started
            response = await connection.send(payload)
            finished = time.perf_counter()
            error = _check(response.status, response.body, target.done_marker, target.error_marker)
            run.record(started, response.first_byte, finished, error)
        except (OSError, ValueError, IndexError) as exc:  # transport errors, unparsable answers
            run.record(started, 0.0, 0.0, f"{type(exc).__name__}: {exc}")
            if connection is not None and connection.transport is not None:
                connection.transport.abort()
            slot[0] = None
        if connection is not None:
            connection.started = 0.0


async def _watchdog(slots: list[list[_Connection | None]], timeout_s: float) -> None:
    """Abort connections whose request has been running longer than the timeout (one cheap loop)."""
    while True:
        await asyncio.sleep(min(1.0, timeout_s / 4))
        now = time.perf_counter()
        for slot in slots:
            connection = slot[0]
            if connection is None or connection.transport is None or not connection.started:
                continue
            if now - connection.started > timeout_s:
                connection.transport.abort()


async def _aiohttp_worker(
    run: _Run, session: aiohttp.ClientSession, limits: aiohttp.ClientTimeout, worker: int
) -> None:
    while (picked := run.next_target(worker)) is not None:
        target = picked[0]
        url = f"http://{target.host}:{target.port}{target.path}"
        started = time.perf_counter()
        first_byte = 0.0
        body = bytearray()
        try:
            async with session.post(url, data=target.body, headers=target.headers, timeout=limits) as resp:
                async for chunk in resp.content.iter_any():
                    if not first_byte:
                        first_byte = time.perf_counter()
                    body += chunk
                finished = time.perf_counter()
                error = _check(resp.status, body, target.done_marker, target.error_marker)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            finished, error = 0.0, f"{type(exc).__name__}: {exc}"
        run.record(started, first_byte, finished, error)


async def run_cell(
    targets: Sequence[Target],
    *,
    concurrency: int,
    requests: int,
    seconds: float = 0.0,
    warmup: int = 0,
    client: str = "raw",
    timeout_s: float = 60.0,
    before: Callable[[], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Tally:
    """Warm up (not measured), call ``before``, then measure until ``requests`` are done or ``seconds``
    have passed, whichever comes first (``0`` = no limit of that kind).

    Requests cycle through ``targets``; with targets on several servers, each worker keeps to one server
    (worker i to the i-th modulo their number). The same connections serve the warm-up and the measured
    phase.
    ``on_progress(n)`` is called after every :data:`PROGRESS_EVERY`-th measured completion.
    """
    tally = Tally()
    loop = asyncio.get_running_loop()
    slots: list[list[_Connection | None]] = [[None] for _ in range(concurrency)]
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False, ttl_dns_cache=None)
    session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
    watchdog = loop.create_task(_watchdog(slots, timeout_s))
    aiohttp_timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def phase(run: _Run) -> None:
        if client == "raw":
            workers = [_raw_worker(run, slot, number) for number, slot in enumerate(slots)]
        else:
            workers = [
                _aiohttp_worker(run, session, aiohttp_timeout, number) for number in range(concurrency)
            ]
        await asyncio.gather(*workers)

    try:
        if warmup:
            await phase(_Run(targets, warmup, time.perf_counter() + WARMUP_MAX_S, None))
        if before is not None:
            before()
        started = time.perf_counter()
        measured = _Run(targets, requests or 2**62, started + seconds if seconds else 0.0, tally)
        if on_progress is not None:
            measured.on_completed = lambda n: on_progress(n) if n % PROGRESS_EVERY == 0 else None
        await phase(measured)
        tally.elapsed_s = time.perf_counter() - started
    finally:
        watchdog.cancel()
        for slot in slots:
            if slot[0] is not None and slot[0].transport is not None:
                slot[0].transport.close()
        await session.close()
    return tally


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of unsorted ``values`` (``nan`` when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1]
