"""An upstream answer handed to the proxy routes: status and headers known, body read on demand.

The HTTP client's and asyncio's exceptions met while reading a body are translated here, once, into
`UpstreamStreamError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

from trollllm.upstream.http1 import Http1Error, Http1Response


class UpstreamStreamError(Exception):
    """The upstream body broke off after the status was known: idle timeout between chunks, connection
    reset or closed before the end. The status can no longer change; the route ends the stream (or the
    body) with an error and settles billing on what was delivered."""


class UpstreamDeadlineExceeded(UpstreamStreamError):
    """The request's total deadline passed while its body was still coming (the request's own limit:
    answered as `UpstreamTimeout`, 504 or an error event, and never held against the factory key)."""


@dataclass(eq=False)
class UpstreamReply:
    """An open upstream response (status and headers known, body not yet read).

    `headers` are the upstream's response headers (lower-case names, case-insensitive lookups). The
    gateway asks upstream for an uncompressed body (`accept-encoding: identity`). Read the body with
    `read()` or `chunks()`, once, then call `release()` (both readers release on their own when they
    finish or fail; `release()` is idempotent and also closes a connection whose body was not read to
    the end).
    """

    status: int
    headers: Mapping[str, str]
    factory_key_id: int
    _response: Http1Response | None = field(default=None, repr=False)
    _body: bytes | None = field(default=None, repr=False)
    _idle_timeout_s: float = field(default=60.0, repr=False)
    _deadline: float | None = field(default=None, repr=False)
    """The event loop time by which the whole body must have arrived (None: no total limit)."""
    _on_release: Callable[[], None] | None = field(default=None, repr=False)
    """Called once when the reply is released (gives the factory key's connection slot back)."""

    @classmethod
    def of_response(
        cls,
        response: Http1Response,
        factory_key_id: int,
        idle_timeout_s: float,
        deadline: float | None = None,
        on_release: Callable[[], None] | None = None,
    ) -> UpstreamReply:
        """An open reply over a response whose headers have arrived; its body must be complete by
        `deadline` (event loop time) when given; `on_release` is called once, when it is released."""
        return cls(
            response.status,
            response.headers,
            factory_key_id,
            _response=response,
            _idle_timeout_s=idle_timeout_s,
            _deadline=deadline,
            _on_release=on_release,
        )

    @classmethod
    def buffered(
        cls, status: int, headers: Mapping[str, str], factory_key_id: int, body: bytes
    ) -> UpstreamReply:
        """A reply whose body was already read (an error kept while another key was tried)."""
        return cls(status, headers, factory_key_id, _body=body)

    async def read(self) -> bytes:
        """The whole body; `UpstreamStreamError` if it stalls longer than the idle timeout between two
        pieces or the connection drops (`UpstreamDeadlineExceeded` past the deadline). Releases the
        connection."""
        if self._body is not None:
            return self._body
        parts = [chunk async for chunk in self.chunks()]
        self._body = b"".join(parts)
        return self._body

    @property
    def body_ended(self) -> bool:
        """Whether the body has all arrived: the chunks handed out were the last (the next ends the body)."""
        response = self._response
        return response is None or response.body_ended

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, piece by piece (not split on SSE event boundaries).

        Raises `UpstreamStreamError` when no byte comes for the idle timeout or the connection drops
        before the end, `UpstreamDeadlineExceeded` once the deadline has passed (bytes received after it
        are not handed out). Releases the connection when done, failed or closed early.
        """
        if self._body is not None:
            if self._body:
                yield self._body
            return
        response = self._response
        if response is None:
            raise UpstreamStreamError("the upstream body was already consumed")
        deadline = self._deadline
        loop = asyncio.get_running_loop()
        idle_s = self._idle_timeout_s
        try:
            while True:
                try:
                    # (`read_until` first takes what is already there, with no wait)
                    until = loop.time() + idle_s
                    if deadline is not None and deadline < until:
                        until = deadline
                    data = await response.read_until(until)
                except (Http1Error, OSError) as exc:
                    raise UpstreamStreamError(
                        f"upstream connection broke mid-body ({type(exc).__name__})"
                    ) from exc
                if data is None:  # nothing came by `until`: the deadline's, or the idle timeout's
                    if deadline is not None and loop.time() >= deadline:
                        raise _deadline_exceeded()
                    raise UpstreamStreamError(f"upstream sent nothing for {idle_s:g} s (idle timeout)")
                if not data:
                    return
                if deadline is not None and loop.time() >= deadline:
                    raise _deadline_exceeded()
                yield data
        finally:
            self.release()

    def release(self) -> None:
        """Return the connection to the pool (or close it, if its body was not read to the end)."""
        response, self._response = self._response, None
        if response is not None:
            response.release()
        on_release, self._on_release = self._on_release, None
        if on_release is not None:
            on_release()

    def __del__(self) -> None:
        # A reply dropped without `release()` must not keep its key's connection slot for ever (its
        # connection is closed by the response's own finalizer).
        on_release = self._on_release
        if on_release is not None:
            self._on_release = None
            on_release()


def _deadline_exceeded() -> UpstreamDeadlineExceeded:
    return UpstreamDeadlineExceeded("the request reached its total deadline before the upstream finished")
