"""Telling a refusal by the outbound proxy itself from the provider's own 401/403.

A request to an http:// provider through an http proxy is sent in absolute form: the proxy reads it and
may answer it itself instead of forwarding it. Squid and most proxies answer bad or missing credentials
with 407 (`ProxyStatusError`), but tinyproxy answers *wrong* credentials with a plain 401 (an HTML page,
`WWW-Authenticate: Basic`), and an ACL denial with 403, exactly the statuses that disable a factory key.

The rule (only for absolute-form requests through a proxy; a CONNECT tunnel carries TLS end to end, so
no proxy can answer inside it): a 401 or 403 is the proxy's when it carries `Proxy-Authenticate`, or when
its body is not a provider error. Every provider the gateway speaks to (OpenAI and its compatibles,
Anthropic) answers 401/403 with a JSON object holding an `error` member; a proxy answers with HTML or an
empty body. Getting it wrong in either direction is cheap: a provider 401 taken for the proxy's only
cools the key down (it is retried later and refused again), while the opposite disables a good key.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

__all__ = ["PROXY_REFUSED_CREDENTIALS", "proxy_refusal", "proxy_status_error"]

PROXY_REFUSED_CREDENTIALS = "proxy refused credentials"


def _is_provider_error(body: bytes) -> bool:
    """Whether `body` has the shape of a provider's error: a JSON object with an `error` member."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(value, dict) and "error" in value


def proxy_refusal(status: int, headers: Mapping[str, str], body: bytes) -> str | None:
    """The proxy's error when a 401/403 to an absolute-form request came from the proxy, else None."""
    if status not in (401, 403):
        return None
    if "proxy-authenticate" not in headers and _is_provider_error(body):
        return None
    return proxy_status_error(status)


def proxy_status_error(status: int) -> str:
    """The proxy row's last error for a refusal with `status` (to CONNECT or an absolute-form request)."""
    if status in (401, 407):
        return PROXY_REFUSED_CREDENTIALS
    return f"the outbound proxy refused the request ({status})"
