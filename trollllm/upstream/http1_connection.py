"""One HTTP/1.1 client connection for `trollllm.upstream.http1`: an asyncio Protocol feeding
`httptools.HttpResponseParser`, and the errors and header mapping of that client.

A `Connection` carries one request at a time: `request()` sends it and returns once the response head
is there; the body is buffered as it arrives (reading pauses above `READ_HIGH_WATER` bytes not yet taken)
and taken with `read_nowait()` / `read()`; `finish()` hands the connection back to its owner (the pool)
when the response was complete and allows keep-alive, and closes it otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Protocol, TypeVar, cast, overload

import httptools

__all__ = [
    "READ_HIGH_WATER",
    "BodyError",
    "ClientClosedError",
    "ConnectError",
    "ConnectTimeoutError",
    "Connection",
    "ConnectionOwner",
    "Headers",
    "Http1Error",
    "InvalidRequestError",
    "Origin",
    "ProtocolError",
    "ServerDisconnectedError",
]

READ_HIGH_WATER = 256 * 1024
"""Body bytes buffered (not yet taken by the reader) above which the socket is no longer read."""

_T = TypeVar("_T")
Origin = tuple[str, str, int, str | None]
"""What connections are pooled by: (scheme, host, port, proxy URL)."""


class Http1Error(Exception):
    """Base of this client's errors (proxy refusals are `ProxyError`s)."""


class InvalidRequestError(Http1Error):
    """The URL or a header cannot be sent (not http(s), a line break in a header...)."""


class ConnectError(Http1Error):
    """The server cannot be reached: name not resolved, connection refused, TLS handshake failed."""


class ConnectTimeoutError(Http1Error):
    """Opening the connection (TCP, proxy tunnel, TLS handshake) took longer than the connect timeout."""


class ServerDisconnectedError(Http1Error):
    """The connection closed or was reset before a complete response head."""

    def __init__(self, message: str, *, before_any_byte: bool) -> None:
        super().__init__(message)
        self.before_any_byte = before_any_byte


class ProtocolError(Http1Error):
    """The server's answer is not valid HTTP/1.x."""


class BodyError(Http1Error):
    """The body broke off after the head: connection closed or reset before its end."""


class ClientClosedError(Http1Error):
    """`Http1Client.close()` was called."""


class Headers(Mapping[str, str]):
    """Response headers: lower-case names, case-insensitive lookups; repeated fields joined with `, `."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, str]) -> None:
        self._items = items

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, /, default: str | _T) -> str | _T: ...
    def get(self, name: str, /, default: object = None) -> object:
        """The value of header `name` (any case), else `default`."""
        return self._items.get(name.lower(), default)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class ConnectionOwner(Protocol):
    """What a `Connection` tells its pool."""

    def connection_idle(self, conn: Connection) -> None:
        """`conn` served its response completely and can take another request."""

    def connection_closed(self, conn: Connection) -> None:
        """`conn` is closed (by either side); called once."""


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: sends a request, parses its response, buffers the body for the reader."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_complete",
        "_error",
        "_got_byte",
        "_head",
        "_interim",
        "_keep_alive",
        "_loop",
        "_lost",
        "_lost_waiter",
        "_owner",
        "_parser",
        "_paused",
        "_timer",
        "_until",
        "_until_close",
        "_waiter",
        "busy",
        "closed",
        "headers",
        "idle_since",
        "on_body",
        "origin",
        "reused",
        "status",
        "transport",
    )

    def __init__(self, owner: ConnectionOwner, origin: Origin, loop: asyncio.AbstractEventLoop) -> None:
        self._owner = owner
        self._loop = loop
        # httptools hands over each piece of the body (each chunk of a chunked one: an SSE event, usually)
        # through `on_body`, found once, here: the list's own `append`, so no Python call per piece.
        # `data_received` does the rest once per read (counting, pausing, waking the reader).
        self._chunks: list[bytes] = []
        self.on_body = self._chunks.append
        self._parser = httptools.HttpResponseParser(self)
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.busy = self.closed = self.reused = self._lost = False
        self.idle_since = 0.0
        self._lost_waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._until: float | None = None
        self._reset(None)

    def _reset(self, head: asyncio.Future[None] | None) -> None:
        self._head = head
        self.busy = head is not None
        self.status = 0
        self.headers: dict[str, str] = {}
        self._got_byte = self._interim = self._until_close = False
        self._chunks.clear()
        self._buffered = 0
        self._paused = self._complete = self._keep_alive = False
        self._error: Http1Error | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._until = None

    # -- asyncio protocol --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (TCP, or TLS over TCP or over a proxy tunnel)."""
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Feed the parser; bytes that no request asked for make the connection unusable."""
        if not self.busy or self._complete:  # bytes nobody asked for: this connection cannot be trusted
            self._keep_alive = False
            self.close()
            return
        self._got_byte = True
        chunks = self._chunks
        pieces = len(chunks)
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(ProtocolError(f"malformed response from upstream ({type(exc).__name__})"))
            self.close()
            return
        if len(chunks) > pieces:  # body bytes came (counted with their framing: enough to pause on)
            self._buffered += len(data)
            if self._buffered > READ_HIGH_WATER and not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail the request in flight (or end a body delimited by the end of the connection)."""
        self._lost = True
        if self._lost_waiter is not None and not self._lost_waiter.done():
            self._lost_waiter.set_result(None)
        if self.busy and not self._complete:
            detail = f" ({type(exc).__name__})" if exc is not None else ""
            if self._head is not None:
                message = f"upstream closed the connection before answering{detail}"
                self._fail(ServerDisconnectedError(message, before_any_byte=not self._got_byte))
            elif self._until_close and exc is None:
                self._complete = True  # a body delimited by the end of the connection
                self._wake()
            else:
                self._fail(BodyError(f"upstream closed the connection before the end of the body{detail}"))
        if not self.closed:
            self.closed = True
            self._owner.connection_closed(self)

    # -- httptools callbacks ------------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        """httptools: one response header."""
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self.headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        """httptools: the head is complete; wake `request()` (interim 1xx answers are skipped)."""
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self._interim = True
            return
        self.status = status
        headers = self.headers
        self._until_close = "content-length" not in headers and "transfer-encoding" not in headers
        head, self._head = self._head, None
        if head is not None and not head.done():
            head.set_result(None)

    def on_message_complete(self) -> None:
        """httptools: the response is complete."""
        if self._interim:
            self._interim = False
            self.headers = {}
            return
        self._keep_alive = self._parser.should_keep_alive()
        self._complete = True
        self._wake()

    # -- for the client and the response ------------------------------------------------------------------

    async def request(self, data: bytes) -> None:
        """Send one request and wait for its response head."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ServerDisconnectedError("the connection is closed", before_any_byte=True)
        head = self._loop.create_future()
        self._reset(head)
        self.transport.write(data)
        await head

    @property
    def body_ended(self) -> bool:
        """Whether the whole body has arrived and been taken (the next read gives `b""`, with no wait)."""
        return self._complete and not self._chunks and self._error is None

    def read_nowait(self) -> bytes | None:
        """The body bytes received and not yet taken, `b""` at the end, None if none is there yet."""
        if self._chunks:
            return self._take()
        if self._error is not None:
            raise self._error
        if self._complete:
            return b""
        return None

    async def read(self) -> bytes:
        """The next body bytes as they come; `b""` at the end."""
        while (data := self.read_nowait()) is None:
            waiter = self._waiter = self._loop.create_future()
            await waiter
        return data

    async def read_until(self, until: float) -> bytes | None:
        """The next body bytes as they come, `b""` at the end, or None once the event loop time reaches
        `until` with nothing come.

        No timer per wait: one per connection, armed when a wait needs it and moved on lazily. A wait
        sets its own end (`_until`); the armed timer, when it fires before that end, re-arms for it. A
        stream read piece by piece therefore arms one timer per idle-timeout period, not one per piece.
        """
        loop = self._loop
        while not self._chunks:  # (`read_nowait` inline: this runs for every event of a stream)
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            if loop.time() >= until:
                return None
            self._until = until
            timer = self._timer
            if timer is None or timer.when() > until:  # (a later end than a new wait's: re-armed)
                if timer is not None:
                    timer.cancel()
                self._timer = loop.call_at(until, self._on_timer)
            waiter = self._waiter = loop.create_future()
            try:
                await waiter
            finally:
                self._until = None
        return self._take()

    def _take(self) -> bytes:
        """The body bytes received (there are some), taken: reading resumes if it was paused."""
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._paused:
            self._paused = False
            if not self.closed and self.transport is not None:
                self.transport.resume_reading()
        return data

    def _on_timer(self) -> None:
        self._timer = None
        until = self._until
        if until is None:  # nobody waits with an end: the next wait arms it again
            return
        if self._loop.time() >= until:
            self._wake()  # the reader sees its end has passed
        else:
            self._timer = self._loop.call_at(until, self._on_timer)

    def finish(self) -> None:
        """The response is done with: back to the pool if it was read to the end and allows it."""
        self._cancel_timer()
        if self._complete and self._keep_alive and not self.closed and self._error is None:
            if self._paused and self.transport is not None:
                self.transport.resume_reading()
            self._reset(None)
            self.reused = True
            self._owner.connection_idle(self)
        else:
            self.close()

    def close(self, error: Http1Error | None = None) -> None:
        """Close the connection (idempotent); a request in flight fails with `error`."""
        if error is not None and self.busy and not self._complete:
            self._fail(error)
        self._cancel_timer()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
        if not self.closed:
            self.closed = True
            self._owner.connection_closed(self)

    def loop_closed(self) -> bool:
        """Whether the event loop of this connection is closed (nothing can be done with it then)."""
        return self._loop.is_closed()

    async def wait_lost(self) -> None:
        """Until the transport reports the connection gone."""
        if not self._lost:
            if self._lost_waiter is None:
                self._lost_waiter = self._loop.create_future()
            await self._lost_waiter

    def _fail(self, error: Http1Error) -> None:
        head, self._head = self._head, None
        if head is not None:
            if not head.done():
                head.set_exception(error)
        elif self._error is None:
            self._error = error
        self._wake()

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
