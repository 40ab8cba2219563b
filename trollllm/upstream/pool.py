"""`UpstreamPool`: the one way the proxy routes talk to providers.

Selection: the factory keys of the request's provider that are not disabled and not cooling down,
taken in turn (round robin). Keys come from the database, decrypted into memory, and are reloaded after
`invalidate()` or every `RELOAD_INTERVAL_S`.

Deadlines. Every request has a total deadline, `upstream_total_timeout_s` from the start of `send`
(below the hold's lifetime, so a hold never expires under a live request): the whole exchange, headers
and every body chunk, must be over by then. A streaming request's headers come at once, so they must
arrive within the first-byte timeout, and its retries stay within connect + first-byte timeout from the
start. A non-streaming request's headers come only with the finished answer: it waits for them up to the
total deadline. A request that reaches its own total deadline is `UpstreamTimeout` (504): the key is
not cooled down and no other key is tried (the request caused it, not the key).

Retries, all before the reply is handed back (so before any byte reaches the client), on at most
`MAX_ATTEMPTS` distinct keys and within the deadline above:

- 429 or 5xx: the key cools down for the upstream's `Retry-After` (1 s to `MAX_COOLDOWN_S`), else
  `DEFAULT_COOLDOWN_S`; the next key is tried. When no key is left, the last such reply is returned as is.
- connection refused or reset, connect timeout, no response headers of a stream within the first-byte
  timeout: the key cools down for `DEFAULT_COOLDOWN_S`; the next key is tried.
- the outbound proxy refused the request itself (407, a non-2xx to CONNECT, cannot be reached, or a
  401/403 that `proxy_refusal` finds to be the proxy's): the key cools down as above, the proxy row
  gets a `last_error` (e.g. "proxy refused credentials", shown by the admin proxies API, cleared by the
  next request that passes through it); the next key is tried.
- 401 or 403 from the provider: the key is disabled (an admin re-enables it); the next key is tried.
  Such a reply is about the operator's key, not the client's request, so it is never handed back.
- anything else (2xx, other 4xx): returned. A cooled key that answers again is written back `healthy`.

Connections. A factory key has at most `upstream_connections_per_key` requests in flight at once (one
busy connection each, held until the reply is released; `trollllm.upstream.slots`). A request whose key
is full goes at once to a later key of its turn that has a free connection; when none has, it queues
for the key (the `trollllm_upstream_connection_queue` gauge) up to `upstream_connection_wait_s` from
its start, then tries the next key the same way, and past that bound it is `UpstreamUnavailable` (503)
with `Retry-After: 1`: never an unbounded, silent wait.

When no key could answer with a reply worth returning, `UpstreamUnavailable` (503) is raised. Status
changes apply in memory at once and are written to the database in the background (`keystatus`).

Keys bound to an http(s) proxy send through it; socks5 proxies are not supported (the HTTP client,
`trollllm.upstream.http1`, speaks only HTTP to proxies): such keys stay out of rotation with `last_error`
"socks5 proxies are not supported".
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable, Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.clock import Clock
from trollllm.crypto import KeyBox
from trollllm.errors import UpstreamUnavailable
from trollllm.settings import Settings
from trollllm.telemetry import Telemetry
from trollllm.upstream.attempt import AttemptFailed, body_of, error_kind, excerpt, post_once
from trollllm.upstream.http1 import Http1Client, Http1Response, tls_context
from trollllm.upstream.keyring import (
    DEFAULT_COOLDOWN_S,
    MAX_COOLDOWN_S,
    PoolKey,
    passthrough_headers,
    retry_after_s,
    upstream_url,
)
from trollllm.upstream.keystatus import KeyStatusWriter
from trollllm.upstream.proxy_refusal import proxy_refusal
from trollllm.upstream.reply import UpstreamDeadlineExceeded, UpstreamReply, UpstreamStreamError
from trollllm.upstream.rotation import MAX_ATTEMPTS, KeyRotation
from trollllm.upstream.slots import ConnectionSlots

__all__ = [
    "DEFAULT_COOLDOWN_S",
    "MAX_ATTEMPTS",
    "MAX_COOLDOWN_S",
    "UpstreamDeadlineExceeded",
    "UpstreamPool",
    "UpstreamReply",
    "UpstreamStreamError",
    "UpstreamUnavailable",
    "upstream_url",
]

logger = logging.getLogger("trollllm.upstream")

DNS_CACHE_TTL_S = 300


def open_connections_ceiling() -> int:
    """The most upstream connections this process opens at once: half its file descriptors (each proxied
    request also holds its client's connection). The factory keys' own limits
    (`upstream_connections_per_key`) are what normally bounds them; this keeps users' own keys, which
    have no such limit, from exhausting the descriptors (a failed `connect` would cool a key down)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(64, soft // 2) if soft != resource.RLIM_INFINITY else 65_536


class UpstreamPool:
    """Pooled HTTP client, key rotation, retries and cooldowns for every upstream call.

    `start()` inside the app's lifespan, `close()` at its end (writes pending counters and statuses).
    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        keybox: KeyBox,
        clock: Clock,
        settings: Settings,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._telemetry = telemetry
        self._clock = clock
        self._connect_s = settings.upstream_connect_timeout_s
        self._first_byte_s = settings.upstream_first_byte_timeout_s
        self._idle_s = settings.upstream_idle_timeout_s
        self._total_s = settings.upstream_total_timeout_s
        self._ca_bundle = settings.upstream_ca_bundle
        self._slot_wait_s = settings.upstream_connection_wait_s
        self._slots = ConnectionSlots(settings.upstream_connections_per_key)
        self._http: Http1Client | None = None
        self._writer = KeyStatusWriter(sessions)
        self._rotation = KeyRotation(sessions=sessions, keybox=keybox, clock=clock, writer=self._writer)

    async def start(self) -> None:
        """Open the HTTP connection pool and the background status writer."""
        # The client keeps no cookies: one pool serves every user, nothing may carry over between them.
        self._http = Http1Client(
            limit=open_connections_ceiling(),
            connect_timeout_s=self._connect_s,
            dns_ttl_s=DNS_CACHE_TTL_S,
            ssl_context=tls_context(self._ca_bundle),
        )
        self._writer.start()

    async def close(self) -> None:
        """Write pending counters and statuses, close every connection and forget the decrypted keys."""
        await self._writer.close()
        http, self._http = self._http, None
        if http is not None:
            await http.close()
        self._rotation.forget()

    def invalidate(self) -> None:
        """Factory keys or proxies changed: reload them from the database on the next `send`.

        The admin's change wins over this pool's own cooldown and disable marks.
        """
        self._rotation.invalidate()

    async def flush(self) -> None:
        """Wait until pending status writes and request counters are in the database."""
        await self._writer.flush()

    async def send(
        self,
        provider: str,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        stream: bool = False,
        prefer: int | None = None,
    ) -> UpstreamReply:
        """POST `body` to `path` (like `/v1/chat/completions`) with a key of `provider`.

        `headers` are the client's (lower-case names); only `anthropic-version` and `anthropic-beta`
        pass through, to a provider of the Anthropic wire format. `stream` says whether the client asked
        for a stream (its headers come at once, so the first-byte timeout applies; otherwise they come
        with the finished answer).
        Returns the open reply, whose body must be complete by the request's total deadline (see the
        module docstring for the retry rules); raises `UpstreamUnavailable` when no key answered
        usefully, `UpstreamTimeout` when the request reached its total deadline.
        `prefer`: a key of this provider tried first while it is usable (a conversation's key: its prompt
        cache and encrypted reasoning belong to that upstream account); the usual turns follow it.
        """
        http = self._http
        if http is None:
            raise RuntimeError("UpstreamPool.start() has not been called")
        keys = await self._rotation.keys_of(provider)
        candidates = self._rotation.candidates(provider, keys, prefer)
        if not candidates:
            raise self._rotation.unavailable(keys)
        extra = passthrough_headers(candidates[0].wire_format, headers)  # one provider: one format
        loop = asyncio.get_running_loop()
        started = loop.time()
        total_deadline = started + self._total_s
        deadline = (
            min(started + self._connect_s + self._first_byte_s, total_deadline) if stream else total_deadline
        )
        fallback: UpstreamReply | None = None
        failure: AttemptFailed | None = None
        slot_deadline = started + self._slot_wait_s
        all_busy = False
        for index, key in enumerate(candidates):
            if loop.time() >= deadline:
                break
            if not self._rotation.usable(key):  # cooled or disabled by a concurrent request meanwhile
                continue
            if not await self._take_slot(key, candidates[index + 1 :], min(slot_deadline, deadline)):
                all_busy = True
                continue
            all_busy = False
            now = loop.time()
            remaining = deadline - now
            if remaining <= 0:  # the slot came at the very end of the wait
                self._slots.give_back(key.id)
                break
            wait_s = min(self._first_byte_s, remaining) if stream else remaining
            own_limit = total_deadline - now <= wait_s  # the wait ends at the request's own deadline
            try:
                response = await self._post(http, key, path, body, extra, wait_s, own_limit)
            except BaseException as exc:
                self._slots.give_back(key.id)
                if not isinstance(exc, AttemptFailed):
                    raise
                failure = exc
                if self._telemetry is not None:
                    self._telemetry.count_upstream_error(key.id, "no_reply")
                self._rotation.cool_down(key, DEFAULT_COOLDOWN_S, str(exc))
                if exc.proxy_error is not None:
                    self._rotation.proxy_failed(key, exc.proxy_error)
                continue
            self._writer.count(key.id)
            reply = UpstreamReply.of_response(
                response, key.id, self._idle_s, total_deadline, self._slot_releaser(key.id)
            )
            status = response.status
            if self._telemetry is not None:
                self._telemetry.observe_upstream(key.id, loop.time() - now)
                if status in (401, 403, 429) or status >= 500:
                    self._telemetry.count_upstream_error(key.id, error_kind(status))
            if status in (401, 403):
                error_body = await body_of(reply)
                refusal = proxy_refusal(status, response.headers, error_body) if key.proxy_answers else None
                if refusal is not None:
                    self._rotation.cool_down(
                        key, DEFAULT_COOLDOWN_S, f"the outbound proxy answered {status}: {refusal}"
                    )
                    self._rotation.proxy_failed(key, refusal)
                    continue
                self._rotation.proxy_passed(key)
                self._rotation.disable(key, f"upstream answered {status}: {excerpt(error_body, key)}")
                continue
            self._rotation.proxy_passed(key)
            if status == 429 or status >= 500:
                cooldown = retry_after_s(response.headers.get("retry-after"), self._clock.now())
                self._rotation.cool_down(key, cooldown, f"upstream answered {status}")
                more = (
                    any(self._rotation.usable(k) for k in candidates[index + 1 :]) and loop.time() < deadline
                )
                if not more:
                    return reply
                try:
                    fallback = UpstreamReply.buffered(status, reply.headers, key.id, await reply.read())
                except UpstreamStreamError:
                    reply.release()
                continue
            self._rotation.recovered(key)
            return reply
        if fallback is not None:
            return fallback
        if all_busy:
            raise UpstreamUnavailable(
                f"Every upstream connection of {provider} is busy; try again shortly",
                headers={"Retry-After": "1"},
            )
        raise self._rotation.unavailable(keys) from failure

    async def _take_slot(self, key: PoolKey, later: list[PoolKey], until: float) -> bool:
        """One of `key`'s connection slots, waiting up to `until` (event loop time) for it; False when
        the wait would end later, or at once when a key in `later` has a free slot now (the request goes
        there instead)."""
        slots = self._slots
        if slots.try_take(key.id):
            return True
        if any(slots.has_free(k.id) and self._rotation.usable(k) for k in later):
            return False
        wait_s = until - asyncio.get_running_loop().time()
        telemetry = self._telemetry
        if telemetry is not None:
            telemetry.connection_queue(key.id, 1)
        try:
            taken = await slots.take(key.id, wait_s)
        finally:
            if telemetry is not None:
                telemetry.connection_queue(key.id, -1)
        if not taken:
            logger.warning(
                "factory key %d: all %d connections busy for %g s; request moved on",
                key.id,
                slots.limit,
                self._slot_wait_s,
            )
        return taken

    def _slot_releaser(self, key_id: int) -> Callable[[], None]:
        slots = self._slots
        return lambda: slots.give_back(key_id)

    async def send_direct(
        self, key: PoolKey, path: str, body: bytes, headers: Mapping[str, str], *, stream: bool = False
    ) -> UpstreamReply:
        """One attempt with a key that is not the operator's (a user's own provider key, `trollllm.byok`).

        No rotation, no retry, no cooldown, no disable: every reply, a 401 included, is handed back as is;
        a failure without a reply is `UpstreamUnavailable` (`UpstreamTimeout` at the request's deadline).
        """
        http = self._http
        if http is None:
            raise RuntimeError("UpstreamPool.start() has not been called")
        total_deadline = asyncio.get_running_loop().time() + self._total_s
        wait_s = min(self._connect_s + self._first_byte_s, self._total_s) if stream else self._total_s
        extra = passthrough_headers(key.wire_format, headers)
        try:
            response = await self._post(http, key, path, body, extra, wait_s, not stream)
        except AttemptFailed as exc:
            raise UpstreamUnavailable(f"The provider could not be reached with your own key: {exc}") from exc
        return UpstreamReply.of_response(response, key.id, self._idle_s, total_deadline)

    async def _post(
        self,
        http: Http1Client,
        key: PoolKey,
        path: str,
        body: bytes,
        extra: dict[str, str] | None,
        wait_s: float,
        own_limit: bool,
    ) -> Http1Response:
        """One attempt (`trollllm.upstream.attempt.post_once`) with this pool's timeouts."""
        return await post_once(
            http,
            key,
            path,
            body,
            extra,
            wait_s,
            own_limit,
            connect_s=self._connect_s,
            first_byte_s=self._first_byte_s,
            total_s=self._total_s,
        )

    def record_spend(self, factory_key_id: int | None, nanos: int) -> None:
        """A settled charge on a factory key: added to its `spend_nanos` off the request path."""
        if factory_key_id is not None:
            self._writer.add_spend(factory_key_id, nanos)

    def report_unusable(self, factory_key_id: int, reason: str) -> None:
        """A reply this key gave could not be used (e.g. a stream nobody can read): cool the key down."""
        if self._telemetry is not None:
            self._telemetry.count_upstream_error(factory_key_id, "unreadable")
        key = self._rotation.find(factory_key_id)
        if key is not None:
            self._rotation.cool_down(key, DEFAULT_COOLDOWN_S, reason)
