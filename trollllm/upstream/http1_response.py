"""One upstream response for `trollllm.upstream.http1`: its status and headers, then its body as it comes.

The body is read from the `Connection` it arrived on; reading it to the end (or `release()`) hands the
connection back to the pool, or closes it when the body was not read to the end.
"""

from __future__ import annotations

from trollllm.upstream.http1_connection import Connection, Headers


class Http1Response:
    """A response whose head has arrived: `status`, `headers`, then the body with `read_chunk()`.

    Call `release()` when done with it (reading to the end releases on its own): the connection goes
    back to the pool if the body was read to the end, else it is closed.
    """

    __slots__ = ("_conn", "headers", "status")

    def __init__(self, conn: Connection) -> None:
        self._conn: Connection | None = conn
        self.status = conn.status
        self.headers = Headers(conn.headers)

    @property
    def body_ended(self) -> bool:
        """Whether the body has been read to its end, or the next read will give `b""` with no wait."""
        conn = self._conn
        return conn is None or conn.body_ended

    async def read_chunk(self) -> bytes:
        """The next body bytes, waiting for them; `b""` at the end. `BodyError` if the body broke off."""
        conn = self._conn
        if conn is None:
            return b""
        data = await conn.read()
        if not data:
            self.release()
        return data

    async def read_until(self, until: float) -> bytes | None:
        """The next body bytes, waiting for them up to event loop time `until` (None then: nothing came);
        `b""` at the end. `BodyError` if the body broke off. No timer of its own per call (see
        `Connection.read_until`)."""
        conn = self._conn
        if conn is None:
            return b""
        data = await conn.read_until(until)
        if data == b"":
            self.release()
        return data

    async def read(self) -> bytes:
        """The whole (rest of the) body."""
        parts = []
        while data := await self.read_chunk():
            parts.append(data)
        return b"".join(parts)

    def release(self) -> None:
        """Done with this response (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finish()

    def __del__(self) -> None:
        # A response dropped without `release()` must not hold its pool slot for ever.
        conn = self._conn
        if conn is not None and not conn.closed and not conn.loop_closed():
            conn.close()
