"""A real loopback HTTP server that answers like OpenAI and Anthropic, with faults on demand.

Routes: ``POST /v1/chat/completions`` (OpenAI), ``POST /v1/messages`` and
``POST /v1/messages/count_tokens`` (Anthropic), ``POST /v1/responses``, ``POST /v1/embeddings``,
``GET /v1/models`` (OpenAI list shape); the same without the ``/v1`` prefix.
Per-request behaviour is chosen in the request itself (see :mod:`.controls`); the
server object adds a fault queue, per-key statuses (:mod:`.faults`) and a record of what it received
(:mod:`.recording`). The completion routes are in :mod:`.completions`, the others in :mod:`.aux_routes`.
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Self

from aiohttp import web

from trollllm.mockupstream.anthropic_format import AnthropicWire
from trollllm.mockupstream.aux_routes import AuxRoutes
from trollllm.mockupstream.completions import Completions
from trollllm.mockupstream.faults import Closing, Faults
from trollllm.mockupstream.openai_format import OpenAIWire
from trollllm.mockupstream.pacing import Pacer
from trollllm.mockupstream.prompt_cache import PromptCache
from trollllm.mockupstream.recording import RecordedRequest, Recorder
from trollllm.mockupstream.responses_format import ResponsesWire
from trollllm.mockupstream.wire_format import WireFormat

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "claude-3-5-haiku-latest",
    "claude-sonnet-4-20250514",
)
"""Model ids listed by ``GET /v1/models``; completions accept any model and echo it."""

_MAX_BODY_BYTES = 32 * 1024 * 1024
_SHUTDOWN_TIMEOUT_S = 2.0


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
        self._models = tuple(models)
        self._recorder = Recorder(max_records)
        self._faults = Faults(keys)
        self._ids = itertools.count(1)
        self._prompt_cache = PromptCache() if prompt_cache else None
        self._runner: web.AppRunner | None = None
        self._closing: Closing | None = None
        self._pacer: Pacer | None = None
        self._url: str | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start listening on ``host:port`` (port 0 picks a free one); see :attr:`url`."""
        if self._runner is not None:
            raise RuntimeError("MockUpstream is already started")
        closing = Closing()
        pacer = Pacer()
        completions = Completions(self._recorder, self._faults, self._ids, self._prompt_cache, closing, pacer)
        aux = AuxRoutes(self._recorder, self._faults, self._models)
        app = web.Application(client_max_size=_MAX_BODY_BYTES)
        wires: tuple[tuple[str, WireFormat], ...] = (
            ("chat/completions", OpenAIWire()),
            ("messages", AnthropicWire()),
            ("responses", ResponsesWire()),
        )
        for prefix in ("/v1", ""):
            for path, wire in wires:
                app.router.add_post(f"{prefix}/{path}", _completion_route(completions, wire))
            app.router.add_post(f"{prefix}/embeddings", aux.embeddings)
            app.router.add_post(f"{prefix}/messages/count_tokens", aux.count_tokens)
            app.router.add_get(f"{prefix}/models", aux.list_models)
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
        self._closing = closing
        self._pacer = pacer
        scheme = "http" if self._ssl_context is None else "https"
        self._url = f"{scheme}://{url_host}:{bound_port}"

    async def stop(self) -> None:
        """Stop the server: hanging and delayed requests are cut off, then connections closed."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._closing is not None:
            self._closing.close()
        if self._pacer is not None:
            self._pacer.close()
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
        self._faults.fail_next(status, count, retry_after)

    def set_key_status(self, key: str, status: int | None) -> None:
        """Make every request with API key ``key`` fail with ``status``; ``None`` restores it."""
        self._faults.set_key_status(key, status)

    @property
    def requests(self) -> list[RecordedRequest]:
        """The most recent received requests (up to ``max_records``), oldest first."""
        return list(self._recorder.records)

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent received request; :class:`LookupError` if there is none."""
        if not self._recorder.records:
            raise LookupError("MockUpstream has received no request")
        return self._recorder.records[-1]

    @property
    def request_count(self) -> int:
        """How many requests were received since start or :meth:`clear_requests`."""
        return self._recorder.count

    def clear_requests(self) -> None:
        """Forget the recorded requests and reset :attr:`request_count`."""
        self._recorder.clear()


def _completion_route(
    completions: Completions, wire: WireFormat
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def route(request: web.Request) -> web.StreamResponse:
        return await completions.serve(request, wire)

    return route
