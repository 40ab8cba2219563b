"""Faults on demand: refused keys, queued failure statuses, per-key statuses, delays and hangs cut off by
the server's stop, dropped connections and misspelled stream frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from trollllm.mockupstream.controls import Controls
from trollllm.mockupstream.wire_format import WireFormat, error_response


@dataclass(frozen=True, slots=True)
class Fault:
    """One queued failure: the status and, for 429/503/529, its `retry-after`."""

    status: int
    retry_after: int


def _check_status(status: int) -> None:
    if not 400 <= status <= 599:
        raise ValueError(f"status must be an HTTP error status (400-599), got {status}")


class Faults:
    """The accepted keys (``None``: any non-empty key), the failure queue and the per-key statuses."""

    def __init__(self, keys: Iterable[str] | None) -> None:
        self._keys = None if keys is None else frozenset(keys)
        self._queue: deque[Fault] = deque()
        self._key_status: dict[str, int] = {}

    def fail_next(self, status: int, count: int, retry_after: int) -> None:
        """Queue ``count`` failures with ``status``; used in order by the next requests."""
        _check_status(status)
        self._queue.extend(Fault(status, retry_after) for _ in range(count))

    def set_key_status(self, key: str, status: int | None) -> None:
        """Make every request with ``key`` fail with ``status``; ``None`` restores it."""
        if status is None:
            self._key_status.pop(key, None)
            return
        _check_status(status)
        self._key_status[key] = status

    def key_refusal(self, wire: WireFormat, key: str) -> web.Response | None:
        """The 401 of an unknown key or the status its key is set to, else None."""
        if not key or (self._keys is not None and key not in self._keys):
            message = "invalid x-api-key" if wire.name == "anthropic" else "Incorrect API key provided."
            return error_response(wire, 401, message)
        status = self._key_status.get(key)
        if status is not None:
            return error_response(wire, status, f"mock: this API key is set to fail with {status}")
        return None

    def injected(self, wire: WireFormat) -> web.Response | None:
        """The next queued failure in the wire format's shape, or None when none is queued."""
        if not self._queue:
            return None
        fault = self._queue.popleft()
        return error_response(wire, fault.status, f"mock: injected failure {fault.status}", fault.retry_after)


class Closing:
    """The server's stop, as seen by a request: delays and hangs end when it starts."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def close(self) -> None:
        """The server is stopping: every pause and hang ends now."""
        self._event.set()

    async def wait(self) -> None:
        """Hang until the server stops."""
        await self._event.wait()

    async def pause(self, milliseconds: int) -> bool:
        """Sleep; ``False`` when the server started stopping meanwhile."""
        try:
            await asyncio.wait_for(self._event.wait(), milliseconds / 1000)
        except TimeoutError:
            return True
        return False


def abort(request: web.Request, response: web.StreamResponse | None = None) -> web.StreamResponse:
    """Close the TCP connection abruptly; the returned response is never delivered."""
    if request.transport is not None:
        request.transport.abort()
    return response if response is not None else web.Response()


def faulty_frames(frames: list[bytes], controls: Controls) -> list[bytes]:
    """The stream's frames with the spelling faults asked for (``spaced_json``, ``junk_stream``)."""
    if controls.junk_stream:
        return [b"data: <html>not an event</html>\n\n" for _ in frames]
    if not controls.spaced_json:
        return frames
    spaced = []
    for frame in frames:
        lines = frame.rstrip(b"\n").split(b"\n")
        for index, line in enumerate(lines):
            if line.startswith(b"data: {"):
                with contextlib.suppress(ValueError):  # a frame made malformed on purpose stays so
                    lines[index] = b"data: " + json.dumps(json.loads(line[6:])).encode()
        spaced.append(b"\n".join(lines) + b"\n\n")
    return spaced
