"""Outbound HTTP proxies for the HTTP/1.1 client (`trollllm.upstream.http1`): proxy URLs and tunnels.

An http:// target is reached by sending the request in absolute form (`POST http://host/path`) to the
proxy, with `Proxy-Authorization` when the proxy URL carries credentials; an https:// target through a
`CONNECT host:port` tunnel, then TLS inside it. The proxy itself is reached over plain TCP (`http://`
proxy URLs) or TLS (`https://`).
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlsplit

__all__ = ["ProxyConnectError", "ProxyError", "ProxyStatusError", "ProxyURL", "TunnelSetup"]

_ANSWER_LIMIT = 64 * 1024


class ProxyError(Exception):
    """The outbound proxy did not let a request through."""


class ProxyConnectError(ProxyError):
    """The outbound proxy cannot be reached, or it dropped the connection while opening a tunnel."""


class ProxyStatusError(ProxyError):
    """The outbound proxy refused: a non-2xx answer to `CONNECT`, or 407 to an absolute-form request."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the outbound proxy answered {status}")
        self.status = status


@dataclass(frozen=True, slots=True)
class ProxyURL:
    """A parsed `http://[user:pass@]host:port` (or `https://`) proxy URL."""

    host: str
    port: int
    tls: bool
    authorization: bytes
    """The `proxy-authorization: Basic …\\r\\n` header line, or empty when the URL has no credentials."""

    @classmethod
    def parse(cls, url: str) -> ProxyURL:
        """The proxy at `url`; `ProxyConnectError` (without the URL, which may hold a password) when it is
        not an http(s) proxy URL."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ProxyConnectError("the outbound proxy URL is malformed") from exc
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ProxyConnectError("the outbound proxy URL is not an http(s) URL")
        authorization = b""
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            authorization = b"proxy-authorization: Basic " + base64.b64encode(pair) + b"\r\n"
        default_port = 443 if scheme == "https" else 80
        return cls(parts.hostname, port or default_port, scheme == "https", authorization)

    def connect_request(self, authority: str) -> bytes:
        """The `CONNECT` request that opens a tunnel to `authority` (`host:port`)."""
        line = f"CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n".encode("ascii")
        return line + self.authorization + b"\r\n"


class TunnelSetup(asyncio.Protocol):
    """The protocol of a connection to a proxy while it opens a `CONNECT` tunnel.

    `await open(request)` sends the request and waits for the proxy's answer head; after a 2xx the
    transport is a raw tunnel, ready for `loop.start_tls`.
    """

    def __init__(self) -> None:
        self._answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Collect the answer head and read its status."""
        if self._answer.done():
            return  # the body of a refusal: the caller closes the connection
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _ANSWER_LIMIT:
                self._fail("the outbound proxy sent an oversized answer")
            return
        version, _, rest = bytes(self._buffer[: self._buffer.find(b"\r\n")]).partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            self._fail("the outbound proxy sent a malformed answer")
            return
        status = int(code)
        if 200 <= status < 300 and len(self._buffer) > end + 4:
            self._fail("the outbound proxy sent bytes before the tunnel was in use")
            return
        self._answer.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        """A tunnel that closes before the answer is a proxy that could not connect."""
        if not self._answer.done():
            self._answer.set_exception(ProxyConnectError("the outbound proxy closed the connection"))

    def _fail(self, message: str) -> None:
        self._answer.set_exception(ProxyConnectError(message))
        if self._transport is not None:
            self._transport.close()

    async def open(self, request: bytes) -> None:
        """Send `CONNECT` and wait for a 2xx; `ProxyStatusError` for any other answer."""
        assert self._transport is not None
        self._transport.write(request)
        status = await self._answer
        if not 200 <= status < 300:
            raise ProxyStatusError(status)
