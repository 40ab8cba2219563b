"""An upstream answer handed to the proxy routes: status and headers known, body read on demand.

The HTTP client's and asyncio's exceptions met while reading a body are translated here, once, into
`UpstreamStreamError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from trollllm.upstream.http1 import Http1Error, Http1Response


class UpstreamStreamError(Exception):
    """The upstream body broke off after the status was known: idle timeout between chunks, connection
    reset or closed before the end. The status can no longer change; the route ends the stream (or the
    body) with an error and settles billing on what was delivered."""


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

    @classmethod
    def of_response(
        cls, response: Http1Response, factory_key_id: int, idle_timeout_s: float
    ) -> UpstreamReply:
        """An open reply over a response whose headers have arrived."""
        return cls(
            response.status,
            response.headers,
            factory_key_id,
            _response=response,
            _idle_timeout_s=idle_timeout_s,
        )

    @classmethod
    def buffered(
        cls, status: int, headers: Mapping[str, str], factory_key_id: int, body: bytes
    ) -> UpstreamReply:
        """A reply whose body was already read (an error kept while another key was tried)."""
        return cls(status, headers, factory_key_id, _body=body)

    async def read(self) -> bytes:
        """The whole body; `UpstreamStreamError` if it stalls longer than the idle timeout between two
        pieces or the connection drops. Releases the connection."""
        if self._body is not None:
            return self._body
        parts = [chunk async for chunk in self.chunks()]
        self._body = b"".join(parts)
        return self._body

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, piece by piece (not split on SSE event boundaries).

        Raises `UpstreamStreamError` when no byte comes for the idle timeout or the connection drops
        before the end. Releases the connection when done, failed or closed early.
        """
        if self._body is not None:
            if self._body:
                yield self._body
            return
        response = self._response
        if response is None:
            raise UpstreamStreamError("the upstream body was already consumed")
        try:
            while True:
                try:
                    data = response.read_nowait()  # already there: no timer to arm
                    if data is None:
                        async with asyncio.timeout(self._idle_timeout_s):
                            data = await response.read_chunk()
                except TimeoutError as exc:
                    raise UpstreamStreamError(
                        f"upstream sent nothing for {self._idle_timeout_s:g} s (idle timeout)"
                    ) from exc
                except (Http1Error, OSError) as exc:
                    raise UpstreamStreamError(
                        f"upstream connection broke mid-body ({type(exc).__name__})"
                    ) from exc
                if not data:
                    return
                yield data
        finally:
            self.release()

    def release(self) -> None:
        """Return the connection to the pool (or close it, if its body was not read to the end)."""
        response, self._response = self._response, None
        if response is not None:
            response.release()
