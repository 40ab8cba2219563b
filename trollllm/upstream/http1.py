"""A lean, pooled HTTP/1.1 client for the upstream hot path, on asyncio Protocols and `httptools`.

It does what the gateway needs and nothing more: `POST` a bytes body to an absolute http(s) URL, directly
or through an outbound http(s) proxy (see `trollllm.upstream.http1_proxy`), and hand back the status and
headers as soon as they arrive, the body following piece by piece (streams stay streams). No cookies, no
redirects, no decompression.

Connections are kept alive and pooled per origin (scheme, host, port, proxy URL): one goes back to the
pool only when its response was read to the end and allows keep-alive, and is dropped once idle for
`keepalive_s`. At most `limit` connections are open at a time; a request beyond that waits for a slot
(closing an idle connection of another origin when there is one). A request sent on a reused
connection that the server had closed (end of file or reset before any response byte) is sent again,
once, on a fresh connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from trollllm.upstream.http1_connection import (
    BodyError,
    ClientClosedError,
    ConnectError,
    Connection,
    ConnectTimeoutError,
    Headers,
    Http1Error,
    InvalidRequestError,
    Origin,
    ProtocolError,
    ServerDisconnectedError,
)
from trollllm.upstream.http1_proxy import (
    ProxyConnectError,
    ProxyError,
    ProxyStatusError,
    TunnelSetup,
)
from trollllm.upstream.http1_request import RequestTarget, header_block
from trollllm.upstream.http1_response import Http1Response

__all__ = [
    "BodyError",
    "ClientClosedError",
    "ConnectError",
    "ConnectTimeoutError",
    "Headers",
    "Http1Client",
    "Http1Error",
    "Http1Response",
    "InvalidRequestError",
    "ProtocolError",
    "ProxyConnectError",
    "ProxyError",
    "ProxyStatusError",
    "ServerDisconnectedError",
]

_CLOSE_WAIT_S = 2.0
_TARGET_CACHE_SIZE = 4096

_P = TypeVar("_P", bound=asyncio.BaseProtocol)


class Http1Client:
    """A pool of HTTP/1.1 connections (see the module docstring). Use it from one event loop.

    `connect_timeout_s` bounds opening a connection (TCP, proxy tunnel and TLS handshake); waiting for
    the response is bounded by the caller (`asyncio.timeout` around `post`). `ssl_context` defaults to
    `ssl.create_default_context()`, made on the first https connection.
    """

    def __init__(
        self,
        *,
        limit: int = 512,
        connect_timeout_s: float = 30.0,
        dns_ttl_s: float = 300.0,
        keepalive_s: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._limit = limit
        self._connect_timeout_s = connect_timeout_s
        self._dns_ttl_s = dns_ttl_s
        self._keepalive_s = keepalive_s
        self._ssl = ssl_context
        self._open = 0
        self._idle: dict[Origin, dict[Connection, None]] = {}
        self._all: set[Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._targets: dict[tuple[str, str | None], RequestTarget] = {}
        self._dns: dict[tuple[str, int], tuple[float, list[tuple[int, str]]]] = {}
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections open or being opened (busy and idle)."""
        return self._open

    @property
    def idle_connections(self) -> int:
        """Connections waiting in the pool for their next request."""
        return sum(len(idle) for idle in self._idle.values())

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, proxy: str | None = None
    ) -> Http1Response:
        """`POST body` to `url` (through the proxy at `proxy`, if given) and wait for the response head.

        `headers` are sent as given (lower-case names by convention); `host` and `content-length` are
        added. Raises `Http1Error`s and `ProxyError`s; cancellation closes the connection.
        """
        target = self._targets.get((url, proxy))
        if target is None:
            target = self._target(url, proxy)
        data = b"".join((target.head, header_block(headers), b"content-length: %d\r\n\r\n" % len(body), body))
        fresh = False
        while True:
            conn = await self._acquire(target, fresh)
            try:
                await conn.request(data)
            except BaseException as exc:
                conn.close()
                stale = isinstance(exc, ServerDisconnectedError) and exc.before_any_byte and conn.reused
                if stale and not fresh:
                    fresh = True  # a keep-alive connection the server had closed meanwhile: once more
                    continue
                raise
            if conn.status == 407 and target.proxy is not None and not target.tls:
                conn.close()
                raise ProxyStatusError(407)
            return Http1Response(conn)

    async def close(self) -> None:
        """Close every connection; requests in flight fail with `ClientClosedError`."""
        self._closed = True
        connections = list(self._all)
        for conn in connections:
            conn.close(ClientClosedError("the HTTP client was closed"))
        self._wake_all()
        closing = [asyncio.ensure_future(c.wait_lost()) for c in connections if c.transport is not None]
        if closing:
            await asyncio.wait(closing, timeout=_CLOSE_WAIT_S)

    # -- pool ------------------------------------------------------------------------------------------------

    def _target(self, url: str, proxy: str | None) -> RequestTarget:
        if len(self._targets) >= _TARGET_CACHE_SIZE:
            self._targets.clear()
        target = self._targets[(url, proxy)] = RequestTarget(url, proxy)
        return target

    async def _acquire(self, target: RequestTarget, fresh: bool) -> Connection:
        """An idle connection to the target's origin (unless `fresh`), else a new one once a slot is free."""
        while True:
            if self._closed:
                raise ClientClosedError("the HTTP client was closed")
            if not fresh and (conn := self._take_idle(target.origin)) is not None:
                return conn
            if self._open < self._limit or self._evict_one():
                return await self._connect(target)
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass on the slot this request was woken for
                raise

    def _take_idle(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        conn, _ = idle.popitem()  # the most recently used: the least likely to have been closed
        if asyncio.get_running_loop().time() - conn.idle_since > self._keepalive_s:
            # It and every older one have idled too long (a middlebox may have dropped them silently).
            for stale in [conn, *idle]:
                stale.close()
            return None
        if not idle:
            del self._idle[origin]
        return conn

    def connection_idle(self, conn: Connection) -> None:
        """Back to the pool (see `ConnectionOwner`)."""
        if self._closed:
            conn.close()
            return
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(conn.origin, {})[conn] = None
        self._wake_one()

    def _evict_one(self) -> bool:
        """Close the longest idle connection of any origin, to open another; False if none is idle."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
                return True
        return False

    def connection_closed(self, conn: Connection) -> None:
        """Free the slot of a closed connection (see `ConnectionOwner`)."""
        idle = self._idle.get(conn.origin)
        if idle is not None:
            idle.pop(conn, None)
            if not idle:
                del self._idle[conn.origin]
        if conn in self._all:
            self._all.discard(conn)
            self._open -= 1
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake_all(self) -> None:
        while self._waiters:
            self._wake_one()

    # -- opening connections --------------------------------------------------------------------------------

    async def _connect(self, target: RequestTarget) -> Connection:
        """A new connection, in a slot taken now (closing the connection, on any failure too, frees it)."""
        loop = asyncio.get_running_loop()
        conn = Connection(self, target.origin, loop)
        self._open += 1
        self._all.add(conn)
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await self._open_transport(conn, target, loop)
            if self._closed:
                raise ClientClosedError("the HTTP client was closed")
        except TimeoutError as exc:
            conn.close()
            raise ConnectTimeoutError(f"connect timeout ({self._connect_timeout_s:g} s)") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    async def _open_transport(
        self, conn: Connection, target: RequestTarget, loop: asyncio.AbstractEventLoop
    ) -> None:
        proxy = target.proxy
        if proxy is None:
            await self._dial(lambda: conn, target.host, target.port, target.tls)
            return
        try:
            if not target.tls:
                await self._dial(lambda: conn, proxy.host, proxy.port, proxy.tls)
                return
            transport, setup = await self._dial(TunnelSetup, proxy.host, proxy.port, proxy.tls)
        except ConnectError as exc:
            raise ProxyConnectError("cannot connect to the outbound proxy") from exc
        try:
            await setup.open(proxy.connect_request(target.authority))
            tls = await loop.start_tls(transport, conn, self._ssl_context(), server_hostname=target.host)
        except BaseException as exc:
            transport.close()
            if isinstance(exc, OSError):
                raise ConnectError(f"TLS through the proxy to {target.authority} failed: {exc}") from exc
            raise
        if tls is None:  # typeshed allows it; asyncio returns None only for a closed transport
            raise ConnectError(f"the tunnel to {target.authority} closed during the TLS handshake")
        conn.connection_made(tls)

    async def _dial(
        self, factory: Callable[[], _P], host: str, port: int, tls: bool
    ) -> tuple[asyncio.Transport, _P]:
        """A connection to `host:port` (TLS when `tls`), trying each address it resolves to."""
        loop = asyncio.get_running_loop()
        context = self._ssl_context() if tls else None
        failure: OSError | None = None
        for family, address in await self._resolve(host, port):
            try:
                transport, protocol = await loop.create_connection(
                    factory, address, port, family=family, ssl=context, server_hostname=host if tls else None
                )
            except OSError as exc:
                failure = exc
                continue
            return transport, protocol
        self._dns.pop((host, port), None)
        raise ConnectError(f"cannot connect to {host}:{port}: {failure}") from failure

    async def _resolve(self, host: str, port: int) -> list[tuple[int, str]]:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, host)]
        loop = asyncio.get_running_loop()
        cached = self._dns.get((host, port))
        if cached is not None and cached[0] > loop.time():
            return cached[1]
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(
            dict.fromkeys((int(family), str(sockaddr[0])) for family, _, _, _, sockaddr in infos)
        )
        self._dns[(host, port)] = (loop.time() + self._dns_ttl_s, addresses)
        return addresses

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = tls_context()
        return self._ssl


def tls_context(ca_bundle: Path | None = None) -> ssl.SSLContext:
    """The system's trusted CAs, plus those of `ca_bundle` (a PEM file) for a provider behind a private CA."""
    context = ssl.create_default_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=ca_bundle)
    context.set_alpn_protocols(["http/1.1"])
    return context
