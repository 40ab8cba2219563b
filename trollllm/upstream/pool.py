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

When no key could answer with a reply worth returning, `UpstreamUnavailable` (503) is raised. Status
changes apply in memory at once and are written to the database in the background (`keystatus`).

Keys bound to an http(s) proxy send through it; socks5 proxies are not supported (the HTTP client,
`trollllm.upstream.http1`, speaks only HTTP to proxies): such keys stay out of rotation with `last_error`
"socks5 proxies are not supported".
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.clock import Clock
from trollllm.crypto import KeyBox
from trollllm.errors import UpstreamTimeout, UpstreamUnavailable
from trollllm.settings import Settings
from trollllm.telemetry import Telemetry
from trollllm.upstream.http1 import (
    ConnectTimeoutError,
    Http1Client,
    Http1Error,
    Http1Response,
    ProxyConnectError,
    ProxyStatusError,
    ServerDisconnectedError,
    tls_context,
)
from trollllm.upstream.keyring import (
    DEFAULT_COOLDOWN_S,
    MAX_COOLDOWN_S,
    PoolKey,
    load_keys,
    passthrough_headers,
    retry_after_s,
    scrub,
    upstream_url,
)
from trollllm.upstream.keystatus import KeyStatusWriter
from trollllm.upstream.proxy_refusal import proxy_refusal, proxy_status_error
from trollllm.upstream.reply import UpstreamDeadlineExceeded, UpstreamReply, UpstreamStreamError

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

MAX_ATTEMPTS = 3
RELOAD_INTERVAL_S = 30.0
CONNECTION_LIMIT = 512
DNS_CACHE_TTL_S = 300


class _AttemptFailed(Exception):
    """One attempt got no HTTP reply (internal: becomes a cooldown and the next key).

    `proxy_error` is set when the outbound proxy itself refused or could not be reached.
    """

    def __init__(self, message: str, proxy_error: str | None = None) -> None:
        super().__init__(message)
        self.proxy_error = proxy_error


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
        self._sessions = sessions
        self._telemetry = telemetry
        self._keybox = keybox
        self._clock = clock
        self._connect_s = settings.upstream_connect_timeout_s
        self._first_byte_s = settings.upstream_first_byte_timeout_s
        self._idle_s = settings.upstream_idle_timeout_s
        self._total_s = settings.upstream_total_timeout_s
        self._ca_bundle = settings.upstream_ca_bundle
        self._http: Http1Client | None = None
        self._writer = KeyStatusWriter(sessions)
        self._lock = asyncio.Lock()
        self._keys: dict[str, list[PoolKey]] | None = None
        self._stale = True
        self._reload_at = 0.0
        self._turns: dict[str, int] = {}
        # Marks made here, kept across reloads until the database shows them (a write may lag or fail).
        self._cooldowns: dict[int, float] = {}
        self._disabled: set[int] = set()
        self._proxy_errors: set[int] = set()  # proxies whose row may hold a last error to clear

    async def start(self) -> None:
        """Open the HTTP connection pool and the background status writer."""
        # The client keeps no cookies: one pool serves every user, nothing may carry over between them.
        self._http = Http1Client(
            limit=CONNECTION_LIMIT,
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
        self._keys = None

    def invalidate(self) -> None:
        """Factory keys or proxies changed: reload them from the database on the next `send`.

        The admin's change wins over this pool's own cooldown and disable marks.
        """
        self._stale = True
        self._cooldowns.clear()
        self._disabled.clear()

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
        keys = await self._keys_of(provider)
        candidates = self._candidates(provider, keys, prefer)
        if not candidates:
            raise self._unavailable(keys)
        extra = passthrough_headers(candidates[0].wire_format, headers)  # one provider: one format
        loop = asyncio.get_running_loop()
        started = loop.time()
        total_deadline = started + self._total_s
        deadline = (
            min(started + self._connect_s + self._first_byte_s, total_deadline) if stream else total_deadline
        )
        fallback: UpstreamReply | None = None
        failure: _AttemptFailed | None = None
        for index, key in enumerate(candidates):
            now = loop.time()
            remaining = deadline - now
            if remaining <= 0:
                break
            if not self._usable(key):  # cooled or disabled by a concurrent request meanwhile
                continue
            wait_s = min(self._first_byte_s, remaining) if stream else remaining
            own_limit = total_deadline - now <= wait_s  # the wait ends at the request's own deadline
            try:
                response = await self._post(http, key, path, body, extra, wait_s, own_limit)
            except _AttemptFailed as exc:
                failure = exc
                if self._telemetry is not None:
                    self._telemetry.count_upstream_error(key.id, "no_reply")
                self._cool_down(key, DEFAULT_COOLDOWN_S, str(exc))
                if exc.proxy_error is not None:
                    self._proxy_failed(key, exc.proxy_error)
                continue
            self._writer.count(key.id)
            reply = UpstreamReply.of_response(response, key.id, self._idle_s, total_deadline)
            status = response.status
            if self._telemetry is not None:
                self._telemetry.observe_upstream(key.id, loop.time() - now)
                if status in (401, 403, 429) or status >= 500:
                    self._telemetry.count_upstream_error(key.id, _error_kind(status))
            if status in (401, 403):
                error_body = await _body_of(reply)
                refusal = proxy_refusal(status, response.headers, error_body) if key.proxy_answers else None
                if refusal is not None:
                    self._cool_down(
                        key, DEFAULT_COOLDOWN_S, f"the outbound proxy answered {status}: {refusal}"
                    )
                    self._proxy_failed(key, refusal)
                    continue
                self._proxy_passed(key)
                self._disable(key, f"upstream answered {status}: {_excerpt(error_body, key)}")
                continue
            self._proxy_passed(key)
            if status == 429 or status >= 500:
                cooldown = retry_after_s(response.headers.get("retry-after"), self._clock.now())
                self._cool_down(key, cooldown, f"upstream answered {status}")
                more = any(self._usable(k) for k in candidates[index + 1 :]) and loop.time() < deadline
                if not more:
                    return reply
                try:
                    fallback = UpstreamReply.buffered(status, reply.headers, key.id, await reply.read())
                except UpstreamStreamError:
                    reply.release()
                continue
            if key.db_cooling:
                key.db_cooling = False
                self._writer.recover(key.id, self._clock.now())
            return reply
        if fallback is not None:
            return fallback
        raise self._unavailable(keys) from failure

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
        except _AttemptFailed as exc:
            raise UpstreamUnavailable(f"The provider could not be reached with your own key: {exc}") from exc
        return UpstreamReply.of_response(response, key.id, self._idle_s, total_deadline)

    # -- one attempt ---------------------------------------------------------------------------------

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
        """Send and wait up to `wait_s` for the response headers; every failure without a reply is
        `_AttemptFailed`, except a wait that ends at the request's own total deadline (`own_limit`),
        which is `UpstreamTimeout`."""
        headers = key.headers if extra is None else key.headers | extra
        try:
            async with asyncio.timeout(wait_s):
                return await http.post(key.url(path), body, headers, proxy=key.proxy)
        except ConnectTimeoutError as exc:
            raise _AttemptFailed(f"connect timeout ({self._connect_s:g} s)") from exc
        except ProxyStatusError as exc:
            refusal = proxy_status_error(exc.status)
            raise _AttemptFailed(f"the outbound proxy answered {exc.status}: {refusal}", refusal) from exc
        except ProxyConnectError as exc:
            message = "cannot connect to the outbound proxy"
            raise _AttemptFailed(message, message) from exc
        except ServerDisconnectedError as exc:
            raise _AttemptFailed("upstream closed the connection before answering") from exc
        except TimeoutError as exc:  # before OSError, its base class: the wait above
            if own_limit:
                # The request's own limit: no fault of the key, so no cooldown and no other key.
                raise UpstreamTimeout(
                    f"The upstream did not answer within the request deadline ({self._total_s:g} s)"
                ) from exc
            limit = self._first_byte_s
            raise _AttemptFailed(f"no response within the first-byte timeout ({limit:g} s)") from exc
        except (Http1Error, OSError) as exc:
            detail = scrub(str(exc) or type(exc).__name__, key.secret)
            raise _AttemptFailed(f"connection failed: {detail}") from exc

    # -- keys ----------------------------------------------------------------------------------------

    async def _keys_of(self, provider: str) -> list[PoolKey]:
        keys = self._keys
        if keys is None or self._stale or self._clock.monotonic() >= self._reload_at:
            keys = await self._reload()
        return keys.get(provider, [])

    async def _reload(self) -> dict[str, list[PoolKey]]:
        async with self._lock:
            monotonic = self._clock.monotonic()
            if self._keys is not None and not self._stale and monotonic < self._reload_at:
                return self._keys  # another request reloaded meanwhile
            self._stale = False
            try:
                loaded = await load_keys(
                    self._sessions, self._keybox, now=self._clock.now(), monotonic=monotonic
                )
            except (SQLAlchemyError, OSError) as exc:
                if self._keys is None:
                    raise UpstreamUnavailable("Upstream keys cannot be loaded right now") from exc
                logger.exception("could not reload factory keys; keeping the ones in memory")
                self._reload_at = monotonic + 1.0
                return self._keys
            seen: set[int] = set()
            for provider_keys in loaded.by_provider.values():
                for key in provider_keys:
                    seen.add(key.id)
                    key.cooling_until = max(key.cooling_until, self._cooldowns.get(key.id, 0.0))
                    key.disabled = key.id in self._disabled
            self._disabled &= seen  # the rest: the database shows them disabled (or deleted) now
            self._cooldowns = {i: until for i, until in self._cooldowns.items() if until > monotonic}
            self._proxy_errors |= loaded.proxy_errors
            for key_id, problem in loaded.flagged.items():
                self._writer.flag(key_id, problem)
            self._keys = loaded.by_provider
            self._reload_at = monotonic + RELOAD_INTERVAL_S
            return self._keys

    def _usable(self, key: PoolKey) -> bool:
        return not key.disabled and key.cooling_until <= self._clock.monotonic()

    def _candidates(self, provider: str, keys: list[PoolKey], prefer: int | None = None) -> list[PoolKey]:
        """Up to `MAX_ATTEMPTS` usable keys: the preferred one first when it is usable (it takes no turn),
        else starting at this provider's next turn."""
        usable = [key for key in keys if self._usable(key)]
        if not usable:
            return []
        preferred = [key for key in usable if key.id == prefer] if prefer is not None else []
        if preferred:
            rest = [key for key in usable if key.id != prefer]
            return (preferred + rest)[:MAX_ATTEMPTS]
        turn = self._turns.get(provider, 0)
        self._turns[provider] = turn + 1
        start = turn % len(usable)
        return (usable[start:] + usable[:start])[:MAX_ATTEMPTS]

    def _unavailable(self, keys: list[PoolKey]) -> UpstreamUnavailable:
        """503, with `Retry-After` when a key comes back from its cooldown."""
        now = self._clock.monotonic()
        waits = [key.cooling_until - now for key in keys if not key.disabled and key.cooling_until > now]
        if not waits:
            return UpstreamUnavailable()
        return UpstreamUnavailable(headers={"Retry-After": str(max(1, math.ceil(min(waits))))})

    def _cool_down(self, key: PoolKey, seconds: float, reason: str) -> None:
        until = self._clock.monotonic() + seconds
        key.cooling_until = max(key.cooling_until, until)
        key.db_cooling = True
        self._cooldowns[key.id] = key.cooling_until
        self._writer.cool_down(key.id, self._clock.now() + timedelta(seconds=seconds), reason)
        logger.warning("factory key %d cooling down for %g s: %s", key.id, seconds, reason)

    def record_spend(self, factory_key_id: int | None, nanos: int) -> None:
        """A settled charge on a factory key: added to its `spend_nanos` off the request path."""
        if factory_key_id is not None:
            self._writer.add_spend(factory_key_id, nanos)

    def report_unusable(self, factory_key_id: int, reason: str) -> None:
        """A reply this key gave could not be used (e.g. a stream nobody can read): cool the key down."""
        if self._telemetry is not None:
            self._telemetry.count_upstream_error(factory_key_id, "unreadable")
        for provider_keys in (self._keys or {}).values():
            for key in provider_keys:
                if key.id == factory_key_id:
                    self._cool_down(key, DEFAULT_COOLDOWN_S, reason)
                    return

    def _proxy_failed(self, key: PoolKey, error: str) -> None:
        """The key's outbound proxy refused the request itself: record it on the proxy row."""
        if key.proxy_id is None:
            return
        self._proxy_errors.add(key.proxy_id)
        self._writer.proxy_failed(key.proxy_id, error, self._clock.now())
        logger.warning("outbound proxy %d: %s (factory key %d)", key.proxy_id, error, key.id)

    def _proxy_passed(self, key: PoolKey) -> None:
        """A request went through the key's proxy: clear the proxy's last error, if it has one."""
        if key.proxy_id is not None and key.proxy_id in self._proxy_errors:
            self._proxy_errors.discard(key.proxy_id)
            self._writer.proxy_passed(key.proxy_id)

    def _disable(self, key: PoolKey, reason: str) -> None:
        key.disabled = True
        self._disabled.add(key.id)
        self._writer.disable(key.id, reason)
        logger.error("factory key %d disabled: %s", key.id, reason)


async def _body_of(reply: UpstreamReply) -> bytes:
    """The whole body of an error reply (read and released); empty when it cannot be read."""
    try:
        return await reply.read()
    except UpstreamStreamError:
        return b""


def _excerpt(body: bytes, key: PoolKey) -> str:
    """A short, key-free excerpt of an error body, for `last_error`."""
    if not body:
        return "(no body)"
    return scrub(body[:300].decode("utf-8", "replace"), key.secret)


def _error_kind(status: int) -> str:
    """The `trollllm_upstream_errors` kind of an upstream's error status."""
    if status in (401, 403):
        return "refused"
    return "rate_limited" if status == 429 else "server_error"
