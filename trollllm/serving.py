"""How the gateway is served: uvicorn's httptools protocol, with one system call per response piece.

uvicorn writes a response's status line and headers as soon as the app sends `http.response.start`, then
the body in a second write: two system calls and two wake-ups of the client for every JSON response.
`CoalescingHttpToolsProtocol` gives uvicorn a transport whose writes made in one turn of the event loop
leave together at the end of that turn, so a whole JSON response goes out in one system call. Stream
events sent in different turns still leave one by one, at once: nothing waits on a timer.

Thousands of open streams: each holds two file descriptors (the client's connection and the upstream's),
so `trollllm serve` raises its soft limit on open files to the hard limit (`raise_open_files_limit`), and
listens with an accept backlog of `ACCEPT_BACKLOG` (the kernel caps it at `net.core.somaxconn`), so a
burst of new connections is queued rather than refused.

Memory: `return_large_blocks_to_os` keeps glibc from holding on to large blocks after they are freed (an
argon2 password check allocates 19 MiB; without it, each thread that ever checked a password kept them).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import platform
import resource
from typing import Any

import orjson
from sqlalchemy.orm import configure_mappers
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from trollllm.errors import InvalidRequest
from trollllm.http_errors import error_body

MALFORMED_HEAD = InvalidRequest(
    "Invalid HTTP request: its request line or headers cannot be parsed "
    "(e.g. a bare CR or LF, a folded header line, a NUL byte)",
    field="headers",
)

logger = logging.getLogger("trollllm.serving")

ACCEPT_BACKLOG = 4096
# A hard limit of "unlimited" cannot be the soft one (Linux caps it at fs.nr_open, 1,048,576 by default).
_UNLIMITED_OPEN_FILES = 1_048_576
# Two descriptors per open stream, plus the database, Redis and the listening sockets.
_STREAMS_WANTED = 5000
# glibc's `mallopt` parameter, and the size from which a block gets its own mapping, unmapped when freed.
_M_MMAP_THRESHOLD = -3
LARGE_BLOCK_BYTES = 1 << 20


class CoalescingTransport:
    """A transport wrapper: writes of one loop turn are joined and written once, before anything else.

    Only until a response's first bytes have left: a stream's later events each come in a turn of their own,
    and are written at once (no callback per event); the next request on the connection coalesces again.
    """

    __slots__ = ("_direct", "_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._direct = False

    def write(self, data: bytes) -> None:
        """Queue `data`; it leaves with the rest of this turn's writes (at once, once the response has begun
        to leave)."""
        if self._direct:
            if not self._transport.is_closing():
                self._transport.write(data)
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        """Write what is queued now (called at the end of the turn, and before closing)."""
        pending, self._pending = self._pending, []
        if pending:
            self._direct = True
            if not self._transport.is_closing():
                self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def coalesce(self) -> None:
        """A new request: its response's writes are joined again until they first leave."""
        self.flush()
        self._direct = False

    def close(self) -> None:
        """Write what is queued, then close."""
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a `CoalescingTransport` (pass as `uvicorn.run(..., http=...)`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Wrap the connection's transport, then set up as uvicorn does."""
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def on_message_begin(self) -> None:
        """httptools: a request begins; its response's writes are coalesced (see `CoalescingTransport`)."""
        self.transport.coalesce()  # type: ignore[attr-defined]
        super().on_message_begin()

    def send_400_response(self, msg: str) -> None:
        """The parser refused the request's head: a JSON 400 in its endpoint's shape, then close."""
        path = self.url.partition(b"?")[0].decode("latin-1")
        body = orjson.dumps(error_body(path, MALFORMED_HEAD))
        content = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()


def server_options(graceful_shutdown_s: float | None = None) -> dict[str, Any]:
    """The uvicorn options every way of serving the gateway shares (the CLI, the demo, the test world).

    `graceful_shutdown_s`: on SIGTERM, how long in-flight requests may go on; past it they are cancelled,
    and a cancelled stream still settles what it delivered (uvicorn's default waits forever, and then an
    orchestrator's SIGKILL ends them unsettled).
    """
    options: dict[str, Any] = {
        "http": CoalescingHttpToolsProtocol,
        "log_config": None,
        "access_log": False,
        "backlog": ACCEPT_BACKLOG,
        "server_header": False,  # `server: uvicorn` tells a scanner what to try; and one header less to write
    }
    if graceful_shutdown_s is not None:
        options["timeout_graceful_shutdown"] = graceful_shutdown_s
    return options


def freeze_startup_objects() -> None:
    """Keep everything start-up built out of every later collection, and collect young objects less often.

    Called once the app has started (its lifespan has run): the ORM's mappers, the pools, the caches and the
    imported modules are long-lived, and with them in the collected generations each older-generation
    collection took milliseconds on the event loop (seen as the p99 latency). The hot path allocates few
    reference cycles, so young collections can be rarer too.
    """
    configure_mappers()  # now, not at the first query
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (workers inherit it); the limit now.

    Distributions start services with a soft limit of 1,024 and a much higher hard one: 1,024 descriptors
    are about 500 open streams. Raising the soft limit up to the hard one needs no privilege.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _UNLIMITED_OPEN_FILES if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open files limit from %d to %d: %s", soft, wanted, exc)
        else:
            soft = wanted
    if soft != resource.RLIM_INFINITY and soft < 2 * _STREAMS_WANTED + 100:
        logger.warning(
            "open files limited to %d (hard limit): about %d concurrent streams; raise it (ulimit -Hn, "
            "LimitNOFILE=) for more",
            soft,
            max(0, (soft - 100) // 2),
        )
    return soft


def return_large_blocks_to_os() -> bool:
    """Make glibc give blocks of `LARGE_BLOCK_BYTES` or more their own mapping, returned when freed; whether
    it applied (not on another C library).

    By default glibc raises that threshold to the size of the largest block freed so far (up to 32 MiB):
    after the first argon2 check (19 MiB) the next ones came from a heap that keeps the memory, one heap per
    thread that ran a check, so each login could add 19 MiB to the resident set for good. A fixed threshold
    turns that adaptation off. Blocks this large are rare on the hot path (request bodies are smaller).
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    return bool(ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES))
