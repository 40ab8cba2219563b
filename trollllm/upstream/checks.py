"""The admin's Test button: one real call through a factory key (and its proxy), or through a proxy.

The call is `GET {API root}/models` with the key: OpenAI and Anthropic both answer it for free, and both
check the key first (401/403 for a bad one), so it costs the operator nothing and still proves the URL,
the proxy and the key. A 1-token completion would prove a little more (the model) at a price, on every
click. A proxy is tested by the same call through it, with the first factory key bound to it; with none
bound, with no key to the first provider's API root: any answer of the provider (its 401 included) shows
that the proxy passes requests, while the proxy's own refusal (407, or a 401/403 that is not a provider's
error, as `proxy_refusal` tells) or no answer shows it does not.

Nothing is written: a check changes no key status and no proxy row (rotation has its own rules, in
`pool`). Off the hot path, so a plain httpx client like the own-key check (`byok.validation`); the key
goes only in the auth header, and every message is scrubbed of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.errors import NotFound
from trollllm.providers.tables import Provider
from trollllm.state import AppState
from trollllm.upstream.keyring import (
    ANTHROPIC_DEFAULT_VERSION,
    SOCKS_UNSUPPORTED,
    UNDECRYPTABLE,
    auth_headers,
    factory_key_context,
    scrub,
    upstream_url,
)
from trollllm.upstream.proxy_refusal import proxy_refusal, proxy_status_error
from trollllm.upstream.proxy_secrets import proxy_url_of
from trollllm.upstream.tables import FactoryKey, Proxy

if TYPE_CHECKING:
    import httpx

CHECKED_PATH = "/v1/models"
_DETAIL_CHARS = 200
_MIN_TIMEOUT_S = 5.0


class UpstreamCheck(BaseModel):
    """What one Test call found (`POST /api/admin/factory-keys/{id}/test`, `…/proxies/{id}/test`)."""

    ok: bool = Field(description="the provider answered 2xx (a proxy: the request got through it)")
    status: int | None = Field(description="the HTTP status answered, null when nothing answered")
    latencyMs: int = Field(description="from sending the request to the whole answer, in milliseconds")
    message: str = Field(description="what happened, in words; never holds the key")
    url: str = Field(description="the URL called (no credentials)")
    via: str | None = Field(default=None, description="the proxy's name, when the call went through one")
    checkedAt: datetime


@dataclass(frozen=True, slots=True)
class CheckCall:
    """One call to make: where, with which headers and proxy, and the secret to scrub from messages.

    `of_proxy`: the proxy is what is tested, so any answer that is not the proxy's own is a success.
    """

    url: str
    headers: dict[str, str]
    proxy_url: str | None
    proxy_name: str | None
    secret: str
    of_proxy: bool = False


CheckPlan = CheckCall | UpstreamCheck
"""What a Test will do, read from the database first (no session stays open during the call): the call,
or the result already when no call can be made (a key that does not decrypt, a socks5 proxy)."""


def _timeout(state: AppState) -> httpx.Timeout:
    import httpx  # here, not at import: only the Test button's call needs it (~5 MB with its CLI's imports)

    total = max(state.settings.provider_key_check_timeout_s, _MIN_TIMEOUT_S)
    return httpx.Timeout(total, connect=min(state.settings.upstream_connect_timeout_s, total))


def _error_text(body: bytes) -> str:
    """The provider's error message when the body is its JSON error, else the start of the body."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:_DETAIL_CHARS].decode("utf-8", "replace").strip()
    error = value.get("error") if isinstance(value, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return str(message)[:_DETAIL_CHARS] if message else ""


def _listed(body: bytes) -> int | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    data = value.get("data") if isinstance(value, dict) else None
    return len(data) if isinstance(data, list) else None


def _proxy_answered(call: CheckCall, response: httpx.Response) -> str | None:
    """The proxy's own refusal, when the answer came from the proxy rather than the provider."""
    if call.proxy_url is None:
        return None
    if response.status_code == 407:
        return proxy_status_error(407)
    if urlsplit(call.url).scheme != "http":
        return None  # a CONNECT tunnel: TLS end to end, the proxy cannot answer inside it
    headers = {name.lower(): value for name, value in response.headers.items()}
    return proxy_refusal(response.status_code, headers, response.content)


def _answered(call: CheckCall, response: httpx.Response) -> tuple[bool, str]:
    """(ok, message) for an HTTP answer."""
    status, body = response.status_code, response.content
    refused = _proxy_answered(call, response)
    if refused is not None:
        return False, f"the proxy refused the request: {refused} ({status})"
    if 200 <= status < 300:
        listed = _listed(body)
        message = f"{status} OK" + (f": {listed} models listed" if listed is not None else "")
        return True, (f"the proxy passed the request; {message}" if call.of_proxy else message)
    detail = _error_text(body)
    detail = f": {detail}" if detail else ""
    if not call.secret:
        message = f"the provider answered {status} (no key sent){detail}"
    elif status in (401, 403):
        message = f"the provider refused the key ({status}){detail}"
    else:
        message = f"upstream answered {status}{detail}"
    return (True, f"the proxy passed the request; {message}") if call.of_proxy else (False, message)


async def run_check(state: AppState, plan: CheckPlan) -> UpstreamCheck:
    """Make the planned call (no database session needed) and say what it found."""
    if isinstance(plan, UpstreamCheck):
        return plan
    import httpx  # here, not at import (see `_timeout`)

    call = plan
    started = time.perf_counter()
    status: int | None = None
    timeout = _timeout(state)
    try:
        async with httpx.AsyncClient(
            timeout=timeout, proxy=call.proxy_url, trust_env=False, follow_redirects=False
        ) as client:
            response = await client.get(call.url, headers=call.headers)
        status = response.status_code
        ok, message = _answered(call, response)
    except httpx.ProxyError as exc:
        ok, message = False, f"the proxy {call.proxy_name} refused the tunnel: {exc}"
    except httpx.TimeoutException:
        ok, message = False, f"no answer within {timeout.read:g} s"
    except httpx.ConnectError as exc:
        where = f"the proxy {call.proxy_name}" if call.proxy_url is not None else urlsplit(call.url).netloc
        ok, message = False, f"cannot connect to {where}: {exc or 'connection refused'}"
    except httpx.HTTPError as exc:
        ok, message = False, f"the call failed: {type(exc).__name__} {exc}"
    return UpstreamCheck(
        ok=ok,
        status=status,
        latencyMs=round((time.perf_counter() - started) * 1000),
        message=scrub(_without_proxy_password(message, call.proxy_url), call.secret),
        url=call.url,
        via=call.proxy_name,
        checkedAt=state.clock.now(),
    )


def _without_proxy_password(message: str, proxy_url: str | None) -> str:
    """`message` with the proxy's password masked, should an HTTP error ever quote the proxy URL."""
    password = urlsplit(proxy_url).password if proxy_url else None
    return message.replace(password, "****") if password else message


def _cannot(state: AppState, url: str, message: str, via: str | None = None) -> UpstreamCheck:
    """A check that cannot be made at all (no request sent)."""
    return UpstreamCheck(
        ok=False, status=None, latencyMs=0, message=message, url=url, via=via, checkedAt=state.clock.now()
    )


def _headers(wire_format: str, secret: str) -> dict[str, str]:
    headers = auth_headers(wire_format, secret)
    headers.pop("content-type", None)  # a GET has no body
    if not secret:
        headers.pop("authorization", None)
        headers.pop("x-api-key", None)
    if wire_format == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_DEFAULT_VERSION
    return headers


def _whole_proxy_url(state: AppState, proxy: Proxy) -> str:
    """The proxy's whole URL (credentials included); `ValueError` saying why it cannot be used."""
    if urlsplit(proxy.url).scheme not in ("http", "https"):
        raise ValueError(SOCKS_UNSUPPORTED)
    try:
        return proxy_url_of(proxy.id, proxy.url, proxy.url_encrypted, state.keybox)
    except ValueError as exc:
        raise ValueError("the stored proxy URL cannot be decrypted with this server secret") from exc


async def _key_plan(session: AsyncSession, state: AppState, key: FactoryKey, *, of_proxy: bool) -> CheckPlan:
    url = upstream_url(key.base_url, CHECKED_PATH)
    wire_format = await session.scalar(select(Provider.wire_format).where(Provider.name == key.provider))
    proxy = await session.get(Proxy, key.proxy_id) if key.proxy_id is not None else None
    try:
        secret = state.keybox.decrypt(key.key_encrypted, factory_key_context(key.id))
    except ValueError:
        return _cannot(state, url, UNDECRYPTABLE)
    proxy_url = None
    if proxy is not None:
        try:
            proxy_url = _whole_proxy_url(state, proxy)
        except ValueError as exc:
            return _cannot(state, url, str(exc), proxy.name)
    headers = _headers(wire_format or "openai", secret)
    return CheckCall(url, headers, proxy_url, proxy.name if proxy else None, secret, of_proxy)


async def plan_key_check(session: AsyncSession, state: AppState, key_id: int) -> CheckPlan:
    """The Test of factory key `key_id`: `GET …/models` with it, through its proxy; 404 when unknown."""
    key = await session.get(FactoryKey, key_id)
    if key is None:
        raise NotFound(f"No factory key with id {key_id}")
    return await _key_plan(session, state, key, of_proxy=False)


async def plan_proxy_check(session: AsyncSession, state: AppState, proxy_id: int) -> CheckPlan:
    """The Test of proxy `proxy_id`: through it with its first factory key, else with no key to the first
    provider's API root; 404 when unknown."""
    proxy = await session.get(Proxy, proxy_id)
    if proxy is None:
        raise NotFound(f"No proxy with id {proxy_id}")
    key = await session.scalar(
        select(FactoryKey).where(FactoryKey.proxy_id == proxy_id).order_by(FactoryKey.id).limit(1)
    )
    if key is not None:
        return await _key_plan(session, state, key, of_proxy=True)
    provider = await session.scalar(select(Provider).order_by(Provider.name).limit(1))
    if provider is None:
        return _cannot(state, "", "no provider to call through the proxy: add one first", proxy.name)
    url = upstream_url(provider.base_url, CHECKED_PATH)
    try:
        proxy_url = _whole_proxy_url(state, proxy)
    except ValueError as exc:
        return _cannot(state, url, str(exc), proxy.name)
    return CheckCall(url, _headers(provider.wire_format, ""), proxy_url, proxy.name, "", of_proxy=True)
