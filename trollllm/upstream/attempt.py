"""One attempt of a request on one factory key: send, wait for the response head, translate what failed.

Every failure without an HTTP reply becomes `AttemptFailed` (the pool cools the key down and tries the
next one), except a wait that ends at the request's own total deadline: `UpstreamTimeout`.
"""

from __future__ import annotations

import asyncio

from trollllm.errors import UpstreamTimeout
from trollllm.upstream.http1 import (
    ConnectTimeoutError,
    Http1Client,
    Http1Error,
    Http1Response,
    ProxyConnectError,
    ProxyStatusError,
    ServerDisconnectedError,
)
from trollllm.upstream.keyring import PoolKey, scrub
from trollllm.upstream.proxy_refusal import proxy_status_error
from trollllm.upstream.reply import UpstreamReply, UpstreamStreamError


class AttemptFailed(Exception):
    """One attempt got no HTTP reply (internal: becomes a cooldown and the next key).

    `proxy_error` is set when the outbound proxy itself refused or could not be reached.
    """

    def __init__(self, message: str, proxy_error: str | None = None) -> None:
        super().__init__(message)
        self.proxy_error = proxy_error


async def post_once(
    http: Http1Client,
    key: PoolKey,
    path: str,
    body: bytes,
    extra: dict[str, str] | None,
    wait_s: float,
    own_limit: bool,
    *,
    connect_s: float,
    first_byte_s: float,
    total_s: float,
) -> Http1Response:
    """Send and wait up to `wait_s` for the response headers; every failure without a reply is
    `AttemptFailed`, except a wait that ends at the request's own total deadline (`own_limit`),
    which is `UpstreamTimeout`."""
    headers = key.headers if extra is None else key.headers | extra
    try:
        async with asyncio.timeout(wait_s):
            return await http.post(key.url(path), body, headers, proxy=key.proxy)
    except ConnectTimeoutError as exc:
        raise AttemptFailed(f"connect timeout ({connect_s:g} s)") from exc
    except ProxyStatusError as exc:
        refusal = proxy_status_error(exc.status)
        raise AttemptFailed(f"the outbound proxy answered {exc.status}: {refusal}", refusal) from exc
    except ProxyConnectError as exc:
        message = "cannot connect to the outbound proxy"
        raise AttemptFailed(message, message) from exc
    except ServerDisconnectedError as exc:
        raise AttemptFailed("upstream closed the connection before answering") from exc
    except TimeoutError as exc:  # before OSError, its base class: the wait above
        if own_limit:
            # The request's own limit: no fault of the key, so no cooldown and no other key.
            raise UpstreamTimeout(
                f"The upstream did not answer within the request deadline ({total_s:g} s)"
            ) from exc
        raise AttemptFailed(f"no response within the first-byte timeout ({first_byte_s:g} s)") from exc
    except (Http1Error, OSError) as exc:
        detail = scrub(str(exc) or type(exc).__name__, key.secret)
        raise AttemptFailed(f"connection failed: {detail}") from exc


async def body_of(reply: UpstreamReply) -> bytes:
    """The whole body of an error reply (read and released); empty when it cannot be read."""
    try:
        return await reply.read()
    except UpstreamStreamError:
        return b""


def excerpt(body: bytes, key: PoolKey) -> str:
    """A short, key-free excerpt of an error body, for `last_error`."""
    if not body:
        return "(no body)"
    return scrub(body[:300].decode("utf-8", "replace"), key.secret)


def error_kind(status: int) -> str:
    """The `trollllm_upstream_errors` kind of an upstream's error status."""
    if status in (401, 403):
        return "refused"
    return "rate_limited" if status == 429 else "server_error"
