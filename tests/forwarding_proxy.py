"""A small HTTP forward proxy on loopback, for tests of outbound proxies.

It forwards absolute-URI requests (`POST http://host:port/path HTTP/1.1`, what a client sends through a
proxy to an http:// URL) and opens `CONNECT host:port` tunnels (what a client does for https:// URLs),
one request per client connection (`Connection: close` both ways). It counts what it forwarded and
records the `Proxy-Authorization` it received; with `credentials` set it answers 407 without them, or,
with `tinyproxy=True`, a plain 401 HTML page as tinyproxy does for wrong credentials on absolute-form
requests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authorization"})
_HEAD_LIMIT = 64 * 1024


class ForwardingProxy:
    """`async with ForwardingProxy() as proxy:` then send through `proxy.url`."""

    def __init__(self, *, credentials: tuple[str, str] | None = None, tinyproxy: bool = False) -> None:
        self.tinyproxy = tinyproxy
        self._expected_auth = (
            None
            if credentials is None
            else "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        )
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.forwarded = 0
        """Requests forwarded plus tunnels opened."""
        self.requests: list[str] = []
        """Each forwarded request line as received, e.g. `POST http://127.0.0.1:1234/v1/messages`."""
        self.proxy_authorizations: list[str | None] = []
        """The `Proxy-Authorization` header of each request received (None when absent)."""

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=_HEAD_LIMIT)

    async def stop(self) -> None:
        """Stop listening and cut every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self._server is not None, "ForwardingProxy is not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def accept(self, credentials: tuple[str, str]) -> None:
        """From now on, expect these credentials (as if the proxy's password was changed)."""
        self._expected_auth = (
            "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        )

    def url_with(self, userinfo: str = "") -> str:
        """Its URL, e.g. `http://user:pass@127.0.0.1:1234` with `userinfo="user:pass"`."""
        return f"http://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Its URL without credentials, `http://127.0.0.1:<port>`."""
        return self.url_with()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a side went away; nothing to answer
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")[:-2]
        method, target, _version = request_line.split(" ", 2)
        headers = [
            (name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in lines)
        ]
        auth = next((value for name, value in headers if name.lower() == "proxy-authorization"), None)
        self.proxy_authorizations.append(auth)
        if self._expected_auth is not None and auth != self._expected_auth:
            if self.tinyproxy and method != "CONNECT":
                page = b"<html><head><title>401 Unauthorized</title></head><body>Unauthorized</body></html>"
                writer.write(
                    b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="tinyproxy"\r\n'
                    b"Content-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (len(page), page)
                )
                await writer.drain()
                return
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        if method == "CONNECT":
            await self._tunnel(target, reader, writer)
        else:
            await self._forward(method, target, headers, reader, writer)

    async def _tunnel(self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, _, port = target.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
        self.forwarded += 1
        self.requests.append(f"CONNECT {target}")
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            with contextlib.suppress(ConnectionError):
                await up_writer.wait_closed()

    async def _forward(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        url = urlsplit(target)
        if url.scheme != "http" or url.hostname is None:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        length = next((int(value) for name, value in headers if name.lower() == "content-length"), 0)
        body = await reader.readexactly(length)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        kept = "".join(f"{name}: {value}\r\n" for name, value in headers if name.lower() not in _HOP_BY_HOP)
        up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
        try:
            up_writer.write(f"{method} {path} HTTP/1.1\r\n{kept}Connection: close\r\n\r\n".encode("latin-1"))
            up_writer.write(body)
            await up_writer.drain()
            self.forwarded += 1
            self.requests.append(f"{method} {target}")
            response_head = (await up_reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            status_line, *response_lines = response_head.split("\r\n")[:-2]
            kept_response = "".join(
                f"{line}\r\n"
                for line in response_lines
                if line.partition(":")[0].strip().lower() not in _HOP_BY_HOP
            )
            writer.write(f"{status_line}\r\n{kept_response}Connection: close\r\n\r\n".encode("latin-1"))
            await _pipe(up_reader, writer)
        finally:
            up_writer.close()
            with contextlib.suppress(ConnectionError):
                await up_writer.wait_closed()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until end of file, flushing each piece as it comes (streams stay streams)."""
    while data := await source.read(65536):
        sink.write(data)
        await sink.drain()
    if sink.can_write_eof():
        with contextlib.suppress(OSError):
            sink.write_eof()
