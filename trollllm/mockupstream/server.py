"""A real loopback HTTP server that answers like OpenAI and Anthropic, with faults on demand.

Routes: ``POST /v1/chat/completions`` (OpenAI), ``POST /v1/messages`` and
``POST /v1/messages/count_tokens`` (Anthropic), ``GET /v1/models`` (OpenAI list shape); the same
without the ``/v1`` prefix.
Per-request behaviour is chosen in the request itself (see :mod:`.controls`); the
server object adds a fault queue, per-key statuses and a record of what it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl
import time
import zlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

import orjson
from aiohttp import web
from multidict import CIMultiDict

from trollllm.mockupstream.anthropic_format import AnthropicWire
from trollllm.mockupstream.controls import (
    Controls,
    MockRequestError,
    Reply,
    count_input_tokens,
    parse_controls,
    plan_reply,
)
from trollllm.mockupstream.embeddings import embeddings_reply
from trollllm.mockupstream.openai_format import OpenAIWire
from trollllm.mockupstream.prompt_cache import PromptCache
from trollllm.mockupstream.responses_format import ResponsesWire

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "claude-3-5-haiku-latest",
    "claude-sonnet-4-20250514",
)
"""Model ids listed by ``GET /v1/models``; completions accept any model and echo it."""

_RETRY_AFTER_STATUSES = frozenset({429, 503, 529})
_MAX_BODY_BYTES = 32 * 1024 * 1024
_SHUTDOWN_TIMEOUT_S = 2.0


class WireFormat(Protocol):
    """What the server needs from a wire format (:class:`OpenAIWire`, :class:`AnthropicWire`)."""

    name: str
    id_prefix: str
    request_id_header: str

    def api_key(self, headers: Mapping[str, str]) -> str: ...
    def max_tokens(self, body: Mapping[str, Any]) -> Any: ...
    def hidden_input_tokens(self, body: Mapping[str, Any]) -> int: ...
    def validate(self, body: Mapping[str, Any]) -> str | None: ...
    def view(self, body: Mapping[str, Any]) -> Mapping[str, Any]: ...
    def error(self, status: int, message: str) -> bytes: ...
    def completion(self, reply: Reply, body: Mapping[str, Any]) -> bytes: ...
    def malformed_completion(self, reply: Reply, body: Mapping[str, Any]) -> bytes: ...
    def events(self, reply: Reply, body: Mapping[str, Any], *, malformed: bool = False) -> list[bytes]: ...


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the mock received it: headers unmasked, body parsed (``None`` if not JSON)."""

    method: str
    path: str
    headers: CIMultiDict[str]
    body: Any
    raw: bytes


@dataclass(frozen=True, slots=True)
class _Fault:
    status: int
    retry_after: int


class MockUpstream:
    """A mock OpenAI + Anthropic upstream on loopback, for demo mode, tests and benchmarks.

    ``keys``: the accepted API keys; ``None`` (the default) accepts any non-empty key.
    ``max_records``: how many received requests :attr:`requests` keeps (oldest dropped).

    Use as ``async with MockUpstream() as mock:`` or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        keys: Iterable[str] | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        max_records: int = 1000,
        prompt_cache: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._ssl_context = ssl_context  # serve HTTPS with it (a provider behind a private CA)
        self._keys = None if keys is None else frozenset(keys)
        self._models = tuple(models)
        self._records: deque[RecordedRequest] = deque(maxlen=max_records)
        self._request_count = 0
        self._faults: deque[_Fault] = deque()
        self._key_status: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._openai = OpenAIWire()
        self._anthropic = AnthropicWire()
        self._responses = ResponsesWire()
        self._prompt_cache = PromptCache() if prompt_cache else None
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._url: str | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start listening on ``host:port`` (port 0 picks a free one); see :attr:`url`."""
        if self._runner is not None:
            raise RuntimeError("MockUpstream is already started")
        app = web.Application(client_max_size=_MAX_BODY_BYTES)
        for prefix in ("/v1", ""):
            app.router.add_post(f"{prefix}/chat/completions", self._chat_completions)
            app.router.add_post(f"{prefix}/messages", self._messages)
            app.router.add_post(f"{prefix}/responses", self._responses_api)
            app.router.add_post(f"{prefix}/embeddings", self._embeddings)
            app.router.add_post(f"{prefix}/messages/count_tokens", self._count_tokens)
            app.router.add_get(f"{prefix}/models", self._list_models)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, backlog=1024, ssl_context=self._ssl_context).start()
        except BaseException:
            await runner.cleanup()
            raise
        bound_host, bound_port = runner.addresses[0][:2]
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._runner = runner
        self._closing = asyncio.Event()
        scheme = "http" if self._ssl_context is None else "https"
        self._url = f"{scheme}://{url_host}:{bound_port}"

    async def stop(self) -> None:
        """Stop the server: hanging and delayed requests are cut off, then connections closed."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._closing is not None:
            self._closing.set()
        await runner.cleanup()
        self._url = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:54321``."""
        if self._url is None:
            raise RuntimeError("MockUpstream is not started")
        return self._url

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self.url.rsplit(":", 1)[1])

    # -- programmable behaviour ----------------------------------------------------

    def fail_next(self, status: int, count: int = 1, *, retry_after: int = 1) -> None:
        """Answer the next ``count`` completion requests (either format) with ``status``.

        The error comes in the endpoint's own format, after the key check; 429, 503 and
        529 carry ``retry-after: <retry_after>``. Queued faults are used in order.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status}")
        self._faults.extend(_Fault(status, retry_after) for _ in range(count))

    def set_key_status(self, key: str, status: int | None) -> None:
        """Make every request with API key ``key`` fail with ``status``; ``None`` restores it."""
        if status is None:
            self._key_status.pop(key, None)
        elif not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status}")
        else:
            self._key_status[key] = status

    @property
    def requests(self) -> list[RecordedRequest]:
        """The most recent received requests (up to ``max_records``), oldest first."""
        return list(self._records)

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent received request; :class:`LookupError` if there is none."""
        if not self._records:
            raise LookupError("MockUpstream has received no request")
        return self._records[-1]

    @property
    def request_count(self) -> int:
        """How many requests were received since start or :meth:`clear_requests`."""
        return self._request_count

    def clear_requests(self) -> None:
        """Forget the recorded requests and reset :attr:`request_count`."""
        self._records.clear()
        self._request_count = 0

    # -- handlers ------------------------------------------------------------------

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._openai)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._anthropic)

    async def _responses_api(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._responses)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self._read_json(request)
        refusal = self._check_key(self._openai, self._openai.api_key(request.headers))
        if refusal is not None:
            return refusal
        if self._faults:
            fault = self._faults.popleft()
            return self._error(self._openai, fault.status, f"mock: injected failure {fault.status}")
        try:
            payload = embeddings_reply(body)
        except MockRequestError as exc:
            return self._error(self._openai, 400, str(exc))
        return web.Response(body=payload, content_type="application/json")

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        """Anthropic's token counting: ``{"input_tokens": count_input_tokens(body)}``, deterministic."""
        body = await self._read_json(request)
        refusal = self._check_key(self._anthropic, self._anthropic.api_key(request.headers))
        if refusal is not None:
            return refusal
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return self._error(self._anthropic, 400, "model: Field required")
        if not isinstance(body.get("messages"), list):
            return self._error(self._anthropic, 400, "messages: Field required")
        payload = {"input_tokens": count_input_tokens(body)}
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    async def _read_json(self, request: web.Request) -> Any:
        """The request's JSON body (None when it is not JSON), recorded."""
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self._record(request, raw, body)
        return body

    async def _list_models(self, request: web.Request) -> web.StreamResponse:
        self._record(request, b"", None)
        wire: WireFormat = self._openai
        key = self._openai.api_key(request.headers)
        if not key:
            wire = self._anthropic
            key = self._anthropic.api_key(request.headers)
        refusal = self._check_key(wire, key)
        if refusal is not None:
            return refusal
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": "trollllm-mock"}
            for model in self._models
        ]
        return web.Response(
            body=orjson.dumps({"object": "list", "data": data}), content_type="application/json"
        )

    def _record(self, request: web.Request, raw: bytes, body: Any) -> None:
        self._request_count += 1
        self._records.append(
            RecordedRequest(request.method, request.path, CIMultiDict(request.headers), body, raw)
        )

    def _error(self, wire: WireFormat, status: int, message: str, retry_after: int = 1) -> web.Response:
        headers = {"retry-after": str(retry_after)} if status in _RETRY_AFTER_STATUSES else None
        return web.Response(
            status=status, body=wire.error(status, message), content_type="application/json", headers=headers
        )

    def _check_key(self, wire: WireFormat, key: str) -> web.Response | None:
        if not key or (self._keys is not None and key not in self._keys):
            message = "invalid x-api-key" if wire.name == "anthropic" else "Incorrect API key provided."
            return self._error(wire, 401, message)
        status = self._key_status.get(key)
        if status is not None:
            return self._error(wire, status, f"mock: this API key is set to fail with {status}")
        return None

    async def _serve(self, request: web.Request, wire: WireFormat) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self._record(request, raw, body)
        refusal = self._check_key(wire, wire.api_key(request.headers))
        if refusal is not None:
            return refusal
        if self._faults:
            fault = self._faults.popleft()
            return self._error(
                wire, fault.status, f"mock: injected failure {fault.status}", fault.retry_after
            )
        if not isinstance(body, dict):
            return self._error(wire, 400, "The request body is not a JSON object.")
        problem = wire.validate(body)
        if problem is not None:
            return self._error(wire, 400, problem)
        view = wire.view(body)
        try:
            controls = parse_controls(view, request.headers.items())
            reply = plan_reply(
                view,
                controls,
                max_tokens=wire.max_tokens(body),
                response_id=f"{wire.id_prefix}{next(self._ids):012d}",
                created=int(time.time()),
                hidden_input_tokens=wire.hidden_input_tokens(body),
            )
        except MockRequestError as exc:
            return self._error(wire, 400, str(exc))
        if self._prompt_cache is not None:
            reply = self._prompt_cache.apply(wire.api_key(request.headers), view, reply)
        stream = body.get("stream") is True
        delay_ms = controls.delay_ms + (0 if stream else controls.first_byte_delay_ms)
        if delay_ms and not await self._pause(delay_ms):
            return self._abort(request)
        if controls.hang:
            await self._wait_closing()
            return self._abort(request)
        if controls.status is not None:
            message = f"mock: status {controls.status} requested"
            return self._error(wire, controls.status, message, controls.retry_after)
        if stream:
            return await self._stream(request, wire, reply, body, controls)
        if controls.drop_after is not None:
            return self._abort(request)
        render = wire.malformed_completion if controls.bad_json else wire.completion
        payload = render(reply, body)
        return web.Response(
            body=payload, content_type="application/json", headers={wire.request_id_header: reply.response_id}
        )

    async def _stream(
        self,
        request: web.Request,
        wire: WireFormat,
        reply: Reply,
        body: Mapping[str, Any],
        controls: Controls,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                wire.request_id_header: reply.response_id,
            }
        )
        frames = _faulty_frames(wire.events(reply, body, malformed=controls.bad_json), controls)
        compressor = zlib.compressobj(wbits=zlib.MAX_WBITS | 16) if controls.gzip else None
        if compressor is not None:
            response.headers["Content-Encoding"] = "gzip"
            frames = [compressor.compress(frame) + compressor.flush(zlib.Z_SYNC_FLUSH) for frame in frames]
            frames.append(compressor.flush())
        try:
            await response.prepare(request)
            if controls.first_byte_delay_ms and not await self._pause(controls.first_byte_delay_ms):
                return self._abort(request, response)
            for index, frame in enumerate(frames):
                if controls.drop_after is not None and index >= controls.drop_after:
                    return self._abort(request, response)
                if index and controls.chunk_delay_ms and not await self._pause(controls.chunk_delay_ms):
                    return self._abort(request, response)
                await response.write(frame)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away; nothing left to answer
        return response

    async def _wait_closing(self) -> None:
        assert self._closing is not None  # set by start(), before any request
        await self._closing.wait()

    async def _pause(self, milliseconds: int) -> bool:
        """Sleep; ``False`` when the server started stopping meanwhile."""
        try:
            await asyncio.wait_for(self._wait_closing(), milliseconds / 1000)
        except TimeoutError:
            return True
        return False

    def _abort(self, request: web.Request, response: web.StreamResponse | None = None) -> web.StreamResponse:
        """Close the TCP connection abruptly; the returned response is never delivered."""
        if request.transport is not None:
            request.transport.abort()
        return response if response is not None else web.Response()


def _faulty_frames(frames: list[bytes], controls: Controls) -> list[bytes]:
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
