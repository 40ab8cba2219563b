"""The proxy endpoints: thin handlers over the gate, the upstream pool, the relay and settlement.

Served by `trollllm.proxy.fastpath` (no FastAPI routing, dependency injection or body models): each
handler gets the app state and the `ProxyCall`, and returns an ASGI response.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from starlette.types import Receive, Scope, Send

from trollllm.betas.policy import split_betas
from trollllm.billing.leases import LEASED_HOLD_ID
from trollllm.billing.records import RequestRecord
from trollllm.billing.settlement import Charged, log_unbilled, settle
from trollllm.byok.routing import send_upstream
from trollllm.errors import (
    GatewayError,
    ServerShutdown,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreadable,
)
from trollllm.http_errors import error_response
from trollllm.money import Money, TokenUsage, cost_of, usd_text
from trollllm.proxy.client_writer import ClientWriter
from trollllm.proxy.decoding import UnreadableEncoding, body_decoder, decode_body
from trollllm.proxy.fastpath import ProxyCall, ProxyHandler, ProxyResponse, RawResponse
from trollllm.proxy.gate import Admission, Caller, admit, authenticate, presented_key
from trollllm.proxy.model_list import list_models
from trollllm.proxy.refusals import log_refusal
from trollllm.proxy.relay import MalformedReply, StreamMeter, rewrite_json_reply
from trollllm.proxy.requests import ProxyRequest, StreamRelay, conversation_hint, parse_request
from trollllm.proxy.token_count import COUNT_TOKENS_PATH, count_tokens
from trollllm.proxy.upstream_errors import client_error_body
from trollllm.state import AppState
from trollllm.translate import UntranslatableReply
from trollllm.upstream.affinity import conversation_name
from trollllm.upstream.pool import UpstreamDeadlineExceeded, UpstreamReply, UpstreamStreamError
from trollllm.wire import ENDPOINTS, WireFormat

logger = logging.getLogger("trollllm.proxy")

_JSON = (b"content-type", b"application/json")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
# A stream whose first this many bytes hold no readable event is not a stream a client can read.
_MAX_UNRECOGNISED = 64 * 1024


async def chat_completions(state: AppState, call: ProxyCall) -> ProxyResponse:
    """`POST /v1/chat/completions` (OpenAI format)."""
    return await _proxy(state, call, WireFormat.OPENAI)


async def messages(state: AppState, call: ProxyCall) -> ProxyResponse:
    """`POST /v1/messages` (Anthropic format)."""
    return await _proxy(state, call, WireFormat.ANTHROPIC)


async def _proxy(state: AppState, call: ProxyCall, wire: WireFormat) -> ProxyResponse:
    started = time.perf_counter()
    key = presented_key(call.headers, wire)
    caller: Caller | None = None
    try:
        caller = await authenticate(state, key)
        parsed = parse_request(call.body, wire)
    except GatewayError as refusal:  # refused before the gate: shown in the owner's history (one write)
        await log_refusal(state, call, refusal, started, caller, key)
        raise
    parsed.betas = split_betas(call.headers.get("anthropic-beta"))
    return await forward(state, call, caller, parsed, started)


async def forward(
    state: AppState, call: ProxyCall, caller: Caller, parsed: ProxyRequest, started: float
) -> ProxyResponse:
    """Admit a parsed request (the gate), send it upstream, and relay, bill and log its answer."""
    try:
        admission = await admit(state, caller, parsed, call.request_id)
    except GatewayError as refusal:  # the gate said no: shown in the owner's history (one write)
        await log_refusal(state, call, refusal, started, caller, None)
        raise
    call.model = admission.model.model_id
    if parsed.betas:
        state.betas.count_forwarded(parsed.betas)
    exchange = _Exchange(state, admission, parsed, started, call.request_id)
    hint = conversation_hint(parsed.body, call.headers)
    if hint is not None and admission.own_key is None:
        exchange.conversation = conversation_name(caller.user_id, admission.model.model_id, hint)
        if parsed.preferred_key is None:
            parsed.preferred_key = await state.affinity.key_of(exchange.conversation)
    upstream_wire = parsed.wire if parsed.translation is None else parsed.translation.upstream_wire
    try:
        reply = await send_upstream(
            state,
            admission.own_key,  # BYOK: the caller's own provider key, else the factory keys
            admission.model.provider,
            ENDPOINTS[upstream_wire],
            parsed.upstream_body(admission.model.upstream_model, admission.max_tokens),
            call.headers,  # the pool forwards only what the provider needs (e.g. anthropic-version)
            stream=parsed.stream,
            prefer=parsed.preferred_key,
        )
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError):  # shutdown past its graceful period
            exc_status, exc_type = ServerShutdown.status_code, ServerShutdown.error_type
        else:
            exc_status = exc.status_code if isinstance(exc, GatewayError) else 502
            exc_type = getattr(exc, "error_type", "upstream_error")
        await exchange.settle(TokenUsage(), exc_status, error_type=exc_type)
        if isinstance(exc, GatewayError):
            exc.headers.update(admission.rate_limit.headers)
        raise
    if parsed.stream and reply.status < 400:
        return _StreamResponse(exchange, reply)
    return await exchange.finish_json(reply)


class _Exchange:
    """One admitted request on its way back: knows how to settle it exactly once."""

    def __init__(
        self, state: AppState, admission: Admission, parsed: ProxyRequest, started: float, request_id: str
    ) -> None:
        self.state = state
        self.admission = admission
        self.parsed = parsed
        self.started = started
        # Headers of every response to this request: its id and its RPM decision.
        self.headers = [(b"x-request-id", request_id.encode()), *admission.rate_limit.raw_headers]
        self.request_id = request_id
        self.factory_key_id: int | None = None
        self.settled = False
        self.deferred_cost = Money.ZERO
        self.conversation: str | None = None  # named by a client hint: its next turn prefers this key
        state.in_flight.enter(admission.hold_id, request_id)

    async def finish_json(self, reply: UpstreamReply) -> ProxyResponse:
        self.factory_key_id = reply.factory_key_id
        try:
            raw = decode_body(await reply.read(), reply.headers.get("content-encoding"))
        except UnreadableEncoding as exc:
            await self.settle(TokenUsage(), 502, error_type="upstream_unreadable")
            self.state.upstream.report_unusable(reply.factory_key_id, str(exc))
            raise UpstreamUnreadable(headers=self.admission.rate_limit.headers) from exc
        except UpstreamStreamError as exc:
            error = UpstreamTimeout() if isinstance(exc, UpstreamDeadlineExceeded) else UpstreamError()
            await self.settle(TokenUsage(), error.status_code, error_type=error.error_type)
            error.headers.update(self.admission.rate_limit.headers)
            raise error from exc
        except asyncio.CancelledError:  # shutdown past its graceful period: nothing reached the client
            await self.settle(TokenUsage(), ServerShutdown.status_code, error_type=ServerShutdown.error_type)
            raise
        finally:
            reply.release()
        translation = self.parsed.translation
        if reply.status >= 400:
            await self.settle(TokenUsage(), reply.status, error_type="upstream_error")
            body, content_type = client_error_body(
                reply.status,
                raw,
                reply.headers.get("content-type", "application/json").encode("latin-1"),
                self.parsed.wire,
                translation,
                own_key=self.admission.own_key is not None,
                request_id=self.request_id,
            )
            return RawResponse(reply.status, body, [(b"content-type", content_type), *self.headers])
        try:
            if translation is not None:
                body, usage = translation.reply(raw, self.admission.model.model_id)
            else:
                body, usage = rewrite_json_reply(raw, self.parsed.wire, self.admission.model.model_id)
        except (MalformedReply, UntranslatableReply) as exc:
            await self.settle(TokenUsage(), 502, error_type="upstream_malformed")
            raise UpstreamError(
                "The upstream answered with a malformed body", headers=self.admission.rate_limit.headers
            ) from exc
        if usage is None:
            logger.error(
                "upstream reply without usage; charging nothing", extra={"model": self.parsed.model_id}
            )
        charged = await self.settle(usage or TokenUsage(), reply.status)
        await self.answered()
        cost = charged.cost if charged is not None else self.deferred_cost
        headers = [_JSON, *self.headers, (b"x-trollllm-cost-usd", usd_text(cost).encode())]
        # Never the owner's balance to a Friend Key (nor a balance the outbox has not charged yet).
        if charged is not None and self.admission.caller.friend_key_id is None:
            balance = usd_text(charged.credits_after + charged.ref_credits_after)
            headers.append((b"x-trollllm-balance-usd", balance.encode()))
        return RawResponse(reply.status, body, headers)

    async def answered(self) -> None:
        """The request's 2xx answer is settled: its conversation keeps its key, its hook runs (a failure
        there is logged, not raised)."""
        if self.conversation is not None and self.factory_key_id is not None:
            await self.state.affinity.remember(self.conversation, self.factory_key_id)
        hook = self.parsed.on_answered
        if hook is None:
            return
        try:
            await hook(None if self.admission.own_key is not None else self.factory_key_id)
        except Exception:
            logger.exception("the answer hook failed", extra={"request_id": self.request_id})

    async def settle(
        self, usage: TokenUsage, status: int, *, error_type: str | None = None
    ) -> Charged | None:
        """Charge `usage` and release the rest of the hold, with the ledger entry and the log.

        None when the database refused the settlement: it is in the outbox, and `deferred_cost` is what
        it will charge (the response goes on without a balance).
        """
        assert not self.settled, "a request is settled exactly once"
        self.settled = True
        admission = self.admission
        byok = admission.own_key is not None
        answered = status < 400 or usage.total > 0
        if answered and self.parsed.priced.search_per_request:  # chat `web_search_options`: one per request
            usage = dataclasses.replace(usage, web_search_calls=max(usage.web_search_calls, 1))
        cost = cost_of(usage, admission.model.prices) if answered else Money.ZERO
        if byok:
            cost = Money.ZERO  # the user's own provider key: their provider bills them, we do not
        record = RequestRecord(
            model_id=admission.model.model_id,
            status_code=status,
            latency_ms=int((time.perf_counter() - self.started) * 1000),
            is_success=status < 400,
            is_stream=self.parsed.stream,
            user_key_id=admission.caller.api_key_id,
            friend_key_id=admission.caller.friend_key_id,
            factory_key_id=None if byok else self.factory_key_id,
            is_byok=byok,
            error_type=error_type,
        )
        now = self.state.clock.now()
        if byok:
            program = log_unbilled(admission.hold, usage, record, now)
        else:
            one = self.state.db.data_modifying_ctes
            program = settle(admission.hold, admission.hold_id, cost, usage, record, now, one_statement=one)
        try:
            # The runner completes a started write even if this task is cancelled (client gone).
            if admission.hold_id == LEASED_HOLD_ID and self.state.leases is not None and not byok:
                charged = await self.state.leases.settle(admission.hold, cost, usage, record)
            else:
                charged = await self.state.db.write(program)
            self.state.telemetry.count_spend(charged.cost.nanos)
            self.state.upstream.record_spend(record.factory_key_id, charged.cost.nanos)
            if cost > admission.hold.amount:
                self.state.billing.count_overage(cost, admission.hold.amount, charged.cost)
            return charged
        except Exception:
            if byok:  # nothing to charge: only the log row is lost
                logger.exception("could not log a request on an own provider key")
                return None
            # The answer was delivered (or is being delivered): its settlement must not be lost.
            logger.error(
                "settlement failed; written to the outbox to be replayed",
                exc_info=True,
                extra={"request_id": admission.hold.request_id},
            )
            self.state.outbox.append(admission.hold, admission.hold_id, cost, usage, record, now)
            self.deferred_cost = min(cost, admission.hold.amount)
            return None
        finally:
            self.state.in_flight.leave(admission.hold_id)


class _StreamResponse:
    """An ASGI response relaying an upstream SSE stream chunk by chunk, settling when it ends."""

    status_code = 200

    def __init__(self, exchange: _Exchange, reply: UpstreamReply) -> None:
        self.exchange = exchange
        self.reply = reply
        exchange.factory_key_id = reply.factory_key_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = self.exchange
        parsed = exchange.parsed
        model = exchange.admission.model
        meter: StreamRelay
        if parsed.translation is not None:
            meter = parsed.translation.stream(model.model_id, parsed.client_wants_usage)
        else:
            meter = StreamMeter(
                parsed.wire, model.upstream_model, model.model_id, parsed.client_wants_usage, report_cost=True
            )
        status, error_type = 200, None
        started = False  # the status line waits for the first event that parses: junk is an error
        early: list[bytes] = []
        unreadable: str | None = None
        writer = ClientWriter(send, exchange.state.settings.client_write_timeout_s, exchange.request_id)
        write = writer.write
        # Events that came with the upstream's end: they leave with the held events, in the stream's last
        # write (one system call and one wake-up of the client less; they wait only for the settlement).
        tail = b""

        async def deliver(data: bytes) -> None:
            nonlocal started, tail
            if not started:
                if not meter.events:
                    early.append(data)
                    return
                started = True
                headers = [*_SSE_HEADERS, *exchange.headers]
                await write({"type": "http.response.start", "status": 200, "headers": headers})
                data = b"".join([*early, data])
            if data:
                if tail:
                    data, tail = tail + data, b""
                await write({"type": "http.response.body", "body": data, "more_body": True})

        charged = None
        try:
            try:
                decoder = body_decoder(self.reply.headers.get("content-encoding"))
                async for chunk in self.reply.chunks():
                    data = meter.feed(decoder(chunk) if decoder else chunk)
                    if started:  # (`deliver` inline, for every event once the stream has begun)
                        if data:
                            if self.reply.body_ended:
                                tail += data
                            else:
                                await write({"type": "http.response.body", "body": data, "more_body": True})
                        continue
                    await deliver(data)
                    if not meter.events and meter.pending_bytes + sum(map(len, early)) > _MAX_UNRECOGNISED:
                        unreadable = "no server-sent event in the first bytes of the stream"
                        break
                await deliver(meter.flush())
                if unreadable is None and not meter.events:
                    unreadable = "a stream without any readable event"
            except UnreadableEncoding as exc:
                unreadable = str(exc)
            except UpstreamDeadlineExceeded:
                status, error_type = 504, UpstreamTimeout.error_type
                await deliver(meter.cut(UpstreamTimeout()))
            except asyncio.CancelledError:
                # Only shutdown cancels a request (past the graceful timeout): end the stream with an
                # error event (the server then closes it) and charge what was delivered.
                status, error_type = ServerShutdown.status_code, ServerShutdown.error_type
                if started:
                    await deliver(meter.cut(ServerShutdown()))
            except UpstreamStreamError:
                status, error_type = 502, "upstream_stream_broken"
                if started:
                    await deliver(meter.cut(UpstreamError()))
            if unreadable is not None:
                status, error_type = 502, "upstream_unreadable"
                exchange.state.upstream.report_unusable(self.reply.factory_key_id, unreadable)
                if started:
                    await deliver(meter.cut(UpstreamUnreadable()))
        finally:
            self.reply.release()
            # Settled before the stream's end reaches the client, so its cost is in the log once it ends.
            charged = await exchange.settle(meter.billed_usage(), status, error_type=error_type)
        if not started:  # nothing readable came: a plain error response in the client's format
            error: GatewayError = UpstreamUnreadable() if unreadable is not None else UpstreamError()
            if error_type == ServerShutdown.error_type:
                error = ServerShutdown()
            error.headers.update(exchange.admission.rate_limit.headers)
            path = ENDPOINTS[parsed.wire]
            await error_response(path, error, exchange.request_id)(scope, receive, send)
            return
        if status == 200:
            await exchange.answered()
        try:
            # The held events (usage with its cost, `[DONE]`) end the response in the same write.
            held = tail + meter.release_held(charged.cost if charged is not None else exchange.deferred_cost)
            await write({"type": "http.response.body", "body": held, "more_body": False})
        finally:
            writer.close()


PROXY_ENDPOINTS: dict[str, dict[str, ProxyHandler]] = {
    "/v1/chat/completions": {"POST": chat_completions},
    "/v1/messages": {"POST": messages},
    COUNT_TOKENS_PATH: {"POST": count_tokens},
    "/v1/models": {"GET": list_models},
}
"""Path -> method -> handler, for `trollllm.proxy.fastpath.serve_proxy`."""
