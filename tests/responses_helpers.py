"""What the Responses translation tests share: a sealer for tests, and upstream SSE bodies cut any way."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import orjson

_KEY = b"test-server-key"


class HmacSealer:
    """Seals with an HMAC tag (authenticated, not encrypted: enough to test tamper detection)."""

    def seal(self, plaintext: bytes) -> str:
        tag = hmac.new(_KEY, plaintext, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(tag + plaintext).decode()

    def unseal(self, sealed: str) -> bytes:
        try:
            raw = base64.urlsafe_b64decode(sealed.encode())
        except ValueError as exc:
            raise ValueError("not sealed") from exc
        tag, plaintext = raw[:16], raw[16:]
        if not hmac.compare_digest(tag, hmac.new(_KEY, plaintext, hashlib.sha256).digest()[:16]):
            raise ValueError("altered")
        return plaintext


def sse(events: list[dict[str, Any]], named: bool = False, done: bool = False) -> bytes:
    """An upstream SSE body (Anthropic names its events; OpenAI ends with `[DONE]`)."""
    out = b""
    for event in events:
        if named:
            out += b"event: " + event["type"].encode() + b"\n"
        out += b"data: " + orjson.dumps(event) + b"\n\n"
    return out + (b"data: [DONE]\n\n" if done else b"")


def chunkings(body: bytes) -> Iterator[list[bytes]]:
    """The same body whole, byte by byte, in 7-byte pieces and cut in the middle of every event."""
    yield [body]
    yield [body[i : i + 1] for i in range(len(body))]
    yield [body[i : i + 7] for i in range(0, len(body), 7)]
    cuts = [i + 3 for i in range(len(body)) if body.startswith(b"data:", i)]
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(body[start:cut])
        start = cut
    yield [*pieces, body[start:]]


def parse_events(raw: bytes) -> list[dict[str, Any]]:
    """The data of each Responses event, checking its `event:` line names its type."""
    events = []
    for block in raw.split(b"\n\n"):
        if not block.strip():
            continue
        lines = block.split(b"\n")
        assert lines[0].startswith(b"event: "), block
        payload = orjson.loads(lines[1][len(b"data: ") :])
        assert lines[0][len(b"event: ") :].decode() == payload["type"]
        events.append(payload)
    return events
