"""What the mock received: each request, headers unmasked and body parsed, oldest dropped past a limit."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the mock received it: headers unmasked, body parsed (``None`` if not JSON)."""

    method: str
    path: str
    headers: CIMultiDict[str]
    body: Any
    raw: bytes


class Recorder:
    """The most recent received requests (up to ``max_records``) and how many came since the last clear."""

    def __init__(self, max_records: int) -> None:
        self.records: deque[RecordedRequest] = deque(maxlen=max_records)
        self.count = 0

    def record(self, request: web.Request, raw: bytes, body: Any) -> None:
        """Keep one received request."""
        self.count += 1
        self.records.append(
            RecordedRequest(request.method, request.path, CIMultiDict(request.headers), body, raw)
        )

    async def read_json(self, request: web.Request) -> Any:
        """The request's JSON body (None when it is not JSON), recorded."""
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self.record(request, raw, body)
        return body

    def clear(self) -> None:
        """Forget the recorded requests and reset the count."""
        self.records.clear()
        self.count = 0
