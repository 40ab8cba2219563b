"""The upstream HTTP/1.1 client (`trollllm.upstream.http1`) against real loopback servers.

The mock upstream and the forwarding proxy for the ordinary paths; tiny asyncio servers written here,
each playing one fault, for the rest; a self-signed certificate made here for TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

import orjson
import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from forwarding_proxy import ForwardingProxy

from trollllm.mockupstream import MockUpstream
from trollllm.upstream.http1 import (
    BodyError,
    ClientClosedError,
    ConnectError,
    ConnectTimeoutError,
    Http1Client,
    InvalidRequestError,
    ProtocolError,
    ProxyConnectError,
    ProxyStatusError,
    ServerDisconnectedError,
)

CHAT_BODY = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]})
HEADERS = {"authorization": "Bearer sk-upstream-test-0000", "content-type": "application/json"}

Handler = Callable[["ScriptedServer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# --- loopback servers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    line: str
    headers: dict[str, str]
    body: bytes


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on a connection; None when the client closed it."""
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    line, *lines = head.split("\r\n")[:-2]
    headers = {name.strip().lower(): value.strip() for name, _, value in (x.partition(":") for x in lines)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(line, headers, body)


def answer(body: bytes = b"ok", *, status: str = "200 OK", headers: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n{headers}\r\n".encode() + body


async def wait_for_eof(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass


class ScriptedServer:
    """A loopback server running `handler` on every connection it accepts.

    It records the requests its handlers read (`record`) and counts connections, and the connections
    the client closed (`eofs`, for handlers that wait for it).
    """

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self._handler = handler
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.requests: list[Request] = []
        self.eofs = 0
        self.eof = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self._tls)
        self.port: int = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._server.wait_closed()

    def url(self, path: str = "/v1/chat/completions", *, host: str = "127.0.0.1") -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    async def read(self, reader: asyncio.StreamReader) -> Request | None:
        request = await read_request(reader)
        if request is not None:
            self.requests.append(request)
        return request

    async def until_eof(self, reader: asyncio.StreamReader) -> None:
        await wait_for_eof(reader)
        self.eofs += 1
        self.eof.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await self._handler(self, reader, writer)
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


async def keep_alive(
    server: ScriptedServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer `ok` to every request, keeping the connection open."""
    while await server.read(reader) is not None:
        writer.write(answer())
    server.eofs += 1
    server.eof.set()


def scripted(response: bytes, *, then_close: bool = False) -> Handler:
    """A handler answering each request with the raw `response` bytes (then closing, if asked)."""

    async def handler(
        server: ScriptedServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while await server.read(reader) is not None:
            writer.write(response)
            await writer.drain()
            if then_close:
                return
        server.eofs += 1
        server.eof.set()

    return handler


@pytest.fixture
async def client() -> AsyncIterator[Http1Client]:
    http = Http1Client(connect_timeout_s=2)
    yield http
    await http.close()


# --- TLS -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for `localhost` and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return Certificate(cert_path, key_path)


# --- requests and responses -----------------------------------------------------------------------------


async def test_request_carries_host_content_length_and_the_given_headers(client: Http1Client) -> None:
    async with ScriptedServer(keep_alive) as server:
        response = await client.post(server.url("/v1/chat/completions?x=1"), b"{}", HEADERS)
        await response.read()
    request = server.requests[0]
    assert request.line == "POST /v1/chat/completions?x=1 HTTP/1.1"
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert request.headers["content-length"] == "2"
    assert request.headers["authorization"] == HEADERS["authorization"]
    assert request.body == b"{}"
    assert "cookie" not in request.headers and "accept-encoding" not in request.headers


async def test_status_headers_and_body_of_the_mock(client: Http1Client, mock: MockUpstream) -> None:
    response = await client.post(mock.url + "/v1/chat/completions", CHAT_BODY, HEADERS)
    assert response.status == 200
    assert response.headers.get("Content-Type") == "application/json"
    assert "Content-Length" in response.headers
    assert orjson.loads(await response.read())["object"] == "chat.completion"


async def test_error_status_is_returned_with_its_body(client: Http1Client, mock: MockUpstream) -> None:
    mock.fail_next(503, retry_after=7)
    response = await client.post(mock.url + "/v1/chat/completions", CHAT_BODY, HEADERS)
    assert (response.status, response.headers["retry-after"]) == (503, "7")
    assert b"injected failure 503" in await response.read()


async def test_keep_alive_connection_is_reused(client: Http1Client) -> None:
    async with ScriptedServer(keep_alive) as server:
        for _ in range(3):
            assert await (await client.post(server.url(), b"{}", HEADERS)).read() == b"ok"
    assert server.connections == 1


async def test_answer_with_connection_close_is_not_pooled(client: Http1Client) -> None:
    async with ScriptedServer(scripted(answer(headers="connection: close\r\n"), then_close=True)) as server:
        for _ in range(2):
            assert await (await client.post(server.url(), b"{}", HEADERS)).read() == b"ok"
        assert client.open_connections == 0
    assert server.connections == 2


async def half_a_body(
    server: ScriptedServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer with the first half of a 10-byte body, then wait for the client to hang up."""
    await server.read(reader)
    writer.write(answer(b"0123456789")[:-5])
    await server.until_eof(reader)


async def test_response_released_before_its_end_closes_the_connection(client: Http1Client) -> None:
    async with ScriptedServer(half_a_body) as server:
        response = await client.post(server.url(), b"{}", HEADERS)
        assert response.status == 200
        response.release()
        await asyncio.wait_for(server.eof.wait(), 2)
        assert client.open_connections == 0


async def test_chunked_body_is_dechunked(client: Http1Client) -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    async with ScriptedServer(scripted(chunked)) as server:
        for _ in range(2):
            assert await (await client.post(server.url(), b"{}", HEADERS)).read() == b"hello world"
    assert server.connections == 1


async def test_body_without_length_ends_when_the_server_closes(client: Http1Client) -> None:
    async with ScriptedServer(scripted(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", then_close=True)) as server:
        response = await client.post(server.url(), b"{}", HEADERS)
        assert await response.read() == b"until the end"
        assert client.open_connections == 0


async def test_body_pieces_arrive_as_they_are_sent(client: Http1Client) -> None:
    go_on = asyncio.Event()

    async def streaming(
        server: ScriptedServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nfirst\n\r\n")
        await go_on.wait()
        writer.write(b"7\r\nsecond\n\r\n0\r\n\r\n")

    async with ScriptedServer(streaming) as server:
        response = await client.post(server.url(), b"{}", HEADERS)
        assert await asyncio.wait_for(response.read_chunk(), 2) == b"first\n"
        # Nothing more has come: a read bounded by a deadline gives up (None) rather than wait on.
        assert await response.read_until(asyncio.get_running_loop().time() + 0.05) is None
        go_on.set()
        assert await asyncio.wait_for(response.read(), 2) == b"second\n"


async def test_reading_pauses_while_the_reader_falls_behind(client: Http1Client) -> None:
    size = 32 * 1024 * 1024
    writers: list[asyncio.StreamWriter] = []

    async def big_body(
        server: ScriptedServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read(reader)
        writers.append(writer)
        writer.write(answer(b"x" * size))
        await writer.drain()
        await server.until_eof(reader)

    async with ScriptedServer(big_body) as server:
        response = await client.post(server.url(), b"{}", HEADERS)
        await asyncio.sleep(0.3)
        # The client stopped reading: most of the body still waits in the server's write buffer.
        assert writers[0].transport.get_write_buffer_size() > size // 4
        assert len(await response.read()) == size


async def test_interim_answer_is_skipped(client: Http1Client) -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\n" + answer()
    async with ScriptedServer(scripted(early)) as server:
        response = await client.post(server.url(), b"{}", HEADERS)
        assert response.status == 200 and "link" not in response.headers
        assert await response.read() == b"ok"


async def test_redirect_is_returned_not_followed(client: Http1Client) -> None:
    redirect = answer(b"", status="302 Found", headers="location: http://127.0.0.1:1/elsewhere\r\n")
    async with ScriptedServer(scripted(redirect)) as server:
        response = await client.post(server.url(), b"{}", HEADERS)
        assert (response.status, response.headers["location"]) == (302, "http://127.0.0.1:1/elsewhere")
        await response.read()
    assert len(server.requests) == 1


async def test_header_with_a_line_break_is_refused(client: Http1Client) -> None:
    with pytest.raises(InvalidRequestError):
        await client.post("http://127.0.0.1:1/v1/x", b"{}", {"anthropic-beta": "x\r\nx-injected: 1"})
    assert client.open_connections == 0


async def test_non_http_url_is_refused(client: Http1Client) -> None:
    with pytest.raises(InvalidRequestError):
        await client.post("ftp://127.0.0.1/v1/x", b"{}", HEADERS)


# --- the pool ----------------------------------------------------------------------------------------------


async def test_open_connections_are_bounded_and_requests_wait_for_a_slot() -> None:
    gate = asyncio.Event()
    busy = 0
    most_busy = 0

    async def held(
        server: ScriptedServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal busy, most_busy
        while await server.read(reader) is not None:
            busy += 1
            most_busy = max(most_busy, busy)
            await gate.wait()
            busy -= 1
            writer.write(answer())

    http = Http1Client(limit=2)
    try:
        async with ScriptedServer(held) as server:

            async def one() -> bytes:
                return await (await http.post(server.url(), b"{}", HEADERS)).read()

            calls = [asyncio.create_task(one()) for _ in range(5)]
            await asyncio.sleep(0.2)
            assert (server.connections, most_busy, http.open_connections) == (2, 2, 2)
            gate.set()
            assert await asyncio.wait_for(asyncio.gather(*calls), 5) == [b"ok"] * 5
            assert server.connections == 2
    finally:
        await http.close()


async def test_an_idle_connection_of_another_origin_makes_room() -> None:
    http = Http1Client(limit=1)
    try:
        async with ScriptedServer(keep_alive) as first, ScriptedServer(keep_alive) as second:
            assert await (await http.post(first.url(), b"{}", HEADERS)).read() == b"ok"
            assert await (await http.post(second.url(), b"{}", HEADERS)).read() == b"ok"
            await asyncio.wait_for(first.eof.wait(), 2)
            assert http.open_connections == 1
    finally:
        await http.close()


async def test_connection_idle_past_the_keepalive_time_is_not_reused() -> None:
    http = Http1Client(keepalive_s=0.1)
    try:
        async with ScriptedServer(keep_alive) as server:
            await (await http.post(server.url(), b"{}", HEADERS)).read()
            await asyncio.sleep(0.2)
            assert await (await http.post(server.url(), b"{}", HEADERS)).read() == b"ok"
            await asyncio.wait_for(server.eof.wait(), 2)
            assert (server.connections, http.open_connections) == (2, 1)
    finally:
        await http.close()


async def test_pooled_connection_closed_by_the_server_is_retried_on_a_fresh_one(client: Http1Client) -> None:
    async def one_then_drop(
        server: ScriptedServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if server.connections > 1:
            await keep_alive(server, reader, writer)
            return
        await server.read(reader)
        writer.write(answer())
        await server.read(reader)  # the next request is read, then the connection dropped unanswered

    async with ScriptedServer(one_then_drop) as server:
        for _ in range(2):
            assert await (await client.post(server.url(), b"{}", HEADERS)).read() == b"ok"
        assert (server.connections, len(server.requests)) == (2, 3)
        assert client.open_connections == 1


async def test_fresh_connection_closed_before_answering_is_server_disconnected(client: Http1Client) -> None:
    async def drop(
        server: ScriptedServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read(reader)

    async with ScriptedServer(drop) as server:
        with pytest.raises(ServerDisconnectedError) as caught:
            await client.post(server.url(), b"{}", HEADERS)
    assert caught.value.before_any_byte
    assert server.connections == 1
    assert client.open_connections == 0


async def test_body_cut_short_is_a_body_error(client: Http1Client) -> None:
    async with ScriptedServer(scripted(answer(b"0123456789")[:-4], then_close=True)) as server:
        response = await client.post(server.url(), b"{}", HEADERS)
        with pytest.raises(BodyError):
            await response.read()
        response.release()
        assert client.open_connections == 0


async def test_connection_reset_mid_body_is_a_body_error(client: Http1Client) -> None:
    async def reset(
        server: ScriptedServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        sock: socket.socket = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
        writer.transport.abort()

    async with ScriptedServer(reset) as server:
        response = await client.post(server.url(), b"{}", HEADERS)
        assert await response.read_chunk() == b"hello"
        with pytest.raises(BodyError):
            await response.read_chunk()


async def test_malformed_answer_is_a_protocol_error(client: Http1Client) -> None:
    async with ScriptedServer(scripted(b"SPDY/9 twelve\r\n\r\n")) as server:
        with pytest.raises(ProtocolError):
            await client.post(server.url(), b"{}", HEADERS)
        assert client.open_connections == 0


async def test_cancelled_request_closes_its_connection(client: Http1Client) -> None:
    async def silent(
        server: ScriptedServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read(reader)
        await server.until_eof(reader)

    async with ScriptedServer(silent) as server:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await client.post(server.url(), b"{}", HEADERS)
        await asyncio.wait_for(server.eof.wait(), 2)
        assert client.open_connections == 0


async def test_response_dropped_without_release_frees_its_slot(client: Http1Client) -> None:
    async with ScriptedServer(half_a_body) as server:
        response = await client.post(server.url(), b"{}", HEADERS)
        assert client.open_connections == 1
        del response
        gc.collect()
        assert client.open_connections == 0
        await asyncio.wait_for(server.eof.wait(), 2)


async def test_close_fails_a_body_being_read() -> None:
    http = Http1Client()

    async with ScriptedServer(half_a_body) as server:
        response = await http.post(server.url(), b"{}", HEADERS)
        assert await response.read_chunk() == b"01234"
        reading = asyncio.create_task(response.read_chunk())
        await asyncio.sleep(0)
        await http.close()
        with pytest.raises(ClientClosedError):
            await reading


async def test_close_closes_every_connection() -> None:
    http = Http1Client()
    async with ScriptedServer(keep_alive) as server:
        await (await http.post(server.url(), b"{}", HEADERS)).read()
        assert http.idle_connections == 1
        await http.close()
        await asyncio.wait_for(server.eof.wait(), 2)
        assert http.open_connections == 0


# --- connecting ---------------------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def full_backlog_port() -> Iterator[int]:
    """A port whose listener accepts nothing more: new connections hang in SYN_SENT."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port: int = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):  # fills the accept queue
            yield port


async def test_refused_connection_is_a_connect_error(client: Http1Client) -> None:
    with pytest.raises(ConnectError) as caught:
        await client.post(f"http://127.0.0.1:{closed_port()}/v1/x", b"{}", HEADERS)
    assert "cannot connect to 127.0.0.1" in str(caught.value)
    assert client.open_connections == 0


async def test_connect_timeout_is_its_own_error(full_backlog_port: int) -> None:
    http = Http1Client(connect_timeout_s=0.2)
    try:
        with pytest.raises(ConnectTimeoutError):
            await http.post(f"http://127.0.0.1:{full_backlog_port}/v1/x", b"{}", HEADERS)
        assert http.open_connections == 0
    finally:
        await http.close()


async def test_https_with_sni_and_certificate_checks(certificate: Certificate) -> None:
    server_names: list[str | None] = []
    tls = certificate.server_context()
    tls.sni_callback = lambda _sock, name, _context: server_names.append(name)
    http = Http1Client(ssl_context=certificate.client_context())
    try:
        async with ScriptedServer(keep_alive, tls=tls) as server:
            for _ in range(2):
                response = await http.post(server.url(host="localhost"), b"{}", HEADERS)
                assert await response.read() == b"ok"
        assert server_names == ["localhost"]
        assert server.requests[0].headers["host"] == f"localhost:{server.port}"
    finally:
        await http.close()


async def test_untrusted_certificate_is_a_connect_error(
    client: Http1Client, certificate: Certificate
) -> None:
    async with ScriptedServer(keep_alive, tls=certificate.server_context()) as server:
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.post(server.url(), b"{}", HEADERS)
    assert client.open_connections == 0


# --- outbound proxies ----------------------------------------------------------------------------------


async def test_http_target_goes_through_the_proxy_in_absolute_form(
    client: Http1Client, mock: MockUpstream
) -> None:
    async with ForwardingProxy(credentials=("scott", "ti:ger")) as proxy:
        url = mock.url + "/v1/chat/completions"
        response = await client.post(url, CHAT_BODY, HEADERS, proxy=proxy.url_with("scott:ti%3Ager"))
        assert response.status == 200
        assert orjson.loads(await response.read())["object"] == "chat.completion"
    assert proxy.requests == [f"POST {url}"]
    assert proxy.proxy_authorizations == ["Basic c2NvdHQ6dGk6Z2Vy"]  # scott:ti:ger
    assert "proxy-authorization" not in mock.last_request.headers


async def test_proxy_answering_407_is_a_proxy_status_error(client: Http1Client, mock: MockUpstream) -> None:
    async with ForwardingProxy(credentials=("scott", "tiger")) as proxy:
        with pytest.raises(ProxyStatusError) as caught:
            await client.post(mock.url + "/v1/chat/completions", CHAT_BODY, HEADERS, proxy=proxy.url)
    assert caught.value.status == 407
    assert mock.request_count == 0 and client.open_connections == 0


async def test_unreachable_proxy_is_a_proxy_connect_error(client: Http1Client, mock: MockUpstream) -> None:
    proxy = f"http://user:secret@127.0.0.1:{closed_port()}"
    for url in (mock.url, "https://127.0.0.1:1"):
        with pytest.raises(ProxyConnectError) as caught:
            await client.post(url + "/v1/chat/completions", CHAT_BODY, HEADERS, proxy=proxy)
        assert "secret" not in str(caught.value)


async def test_https_target_goes_through_a_connect_tunnel(certificate: Certificate) -> None:
    http = Http1Client(ssl_context=certificate.client_context())
    try:
        async with (
            ScriptedServer(keep_alive, tls=certificate.server_context()) as server,
            ForwardingProxy(credentials=("scott", "tiger")) as proxy,
        ):
            for _ in range(2):
                response = await http.post(server.url(), b"{}", HEADERS, proxy=proxy.url_with("scott:tiger"))
                assert await response.read() == b"ok"
        assert proxy.requests == [f"CONNECT 127.0.0.1:{server.port}"]  # one tunnel, kept alive
        assert server.requests[0].line == "POST /v1/chat/completions HTTP/1.1"
    finally:
        await http.close()


async def test_connect_refused_by_the_proxy_is_a_proxy_status_error(certificate: Certificate) -> None:
    http = Http1Client(ssl_context=certificate.client_context())
    try:
        async with (
            ScriptedServer(keep_alive, tls=certificate.server_context()) as server,
            ForwardingProxy(credentials=("scott", "tiger")) as proxy,
        ):
            with pytest.raises(ProxyStatusError) as caught:
                await http.post(server.url(), b"{}", HEADERS, proxy=proxy.url_with("scott:wrong"))
        assert caught.value.status == 407
        assert server.connections == 0 and http.open_connections == 0
    finally:
        await http.close()


# --- uvloop (what the gateway runs on) --------------------------------------------------------------------


def test_the_client_runs_on_uvloop(certificate: Certificate) -> None:
    async def scenario() -> None:
        http = Http1Client(ssl_context=certificate.client_context())
        try:
            async with (
                MockUpstream() as mock,
                ScriptedServer(keep_alive, tls=certificate.server_context()) as server,
                ForwardingProxy() as proxy,
            ):
                stream = orjson.loads(CHAT_BODY) | {"stream": True}
                for body in (CHAT_BODY, orjson.dumps(stream)):
                    response = await http.post(mock.url + "/v1/chat/completions", body, HEADERS)
                    assert response.status == 200 and await response.read()
                response = await http.post(server.url(), b"{}", HEADERS, proxy=proxy.url)
                assert await response.read() == b"ok"
                assert http.open_connections == 2
        finally:
            await http.close()

    uvloop.run(scenario())
