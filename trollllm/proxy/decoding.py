"""Undoing a `content-encoding` the upstream applied although the gateway asked for `identity`.

Some providers (or proxies in front of them) compress anyway. The client must never get bytes it cannot
read, so bodies are decoded here — streams incrementally, chunk by chunk — before they are relayed.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

Decoder = Callable[[bytes], bytes]


class UnreadableEncoding(Exception):
    """The body uses a content-encoding the gateway cannot decode, or its bytes do not decode."""


def body_decoder(content_encoding: str | None) -> Decoder | None:
    """An incremental decoder for the upstream's `content-encoding`, or None when the body is plain.

    Supports `gzip` (and `x-gzip`) and `deflate` (zlib-wrapped or raw), also stacked (`gzip, gzip`).
    Raises `UnreadableEncoding` for any other encoding (`br`, `zstd`, ...). The decoder raises
    `UnreadableEncoding` when the bytes are not what the header says.
    """
    if not content_encoding:
        return None
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return None
    steps: list[Decoder] = []
    for coding in reversed(codings):  # the last coding applied is undone first
        if coding in ("gzip", "x-gzip"):
            steps.append(_Inflater(zlib.MAX_WBITS | 16))
        elif coding == "deflate":
            steps.append(_Inflater(None))
        else:
            raise UnreadableEncoding(f"unsupported content-encoding {coding!r}")
    if len(steps) == 1:
        return steps[0]

    def chained(data: bytes) -> bytes:
        for step in steps:
            data = step(data)
        return data

    return chained


def decode_body(raw: bytes, content_encoding: str | None) -> bytes:
    """A whole body decoded (see `body_decoder`); raises `UnreadableEncoding`."""
    decoder = body_decoder(content_encoding)
    return raw if decoder is None else decoder(raw)


class _Inflater:
    """One zlib stream, fed piece by piece; `wbits` None picks zlib or raw deflate from the first bytes."""

    def __init__(self, wbits: int | None) -> None:
        self._wbits = wbits
        self._inflater: zlib._Decompress | None = None if wbits is None else zlib.decompressobj(wbits)
        self._head = b""

    def __call__(self, data: bytes) -> bytes:
        if self._inflater is None:
            self._head += data
            if len(self._head) < 2:
                return b""
            data, self._head = self._head, b""
            zlib_wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
        try:
            return self._inflater.decompress(data)
        except zlib.error as exc:
            raise UnreadableEncoding(f"the body does not decode: {exc}") from exc
