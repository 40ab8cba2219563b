"""UpstreamPool against real loopback servers: the mock provider and a forwarding HTTP proxy.

Factory keys and proxies are created through the admin API, so the pool reads (and decrypts) exactly
what the admin side writes.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import orjson
import pytest
from conftest import AppFactory, AppHarness
from forwarding_proxy import ForwardingProxy
from helpers import Account, make_admin

from trollllm.clock import ManualClock
from trollllm.errors import UpstreamTimeout
from trollllm.mockupstream import MockUpstream
from trollllm.upstream.keyring import SOCKS_UNSUPPORTED, retry_after_s
from trollllm.upstream.pool import (
    DEFAULT_COOLDOWN_S,
    UpstreamPool,
    UpstreamStreamError,
    UpstreamUnavailable,
    upstream_url,
)
from trollllm.upstream.tables import FactoryKey

KEY_A = "sk-upstream-alpha-0000aaaa"
KEY_B = "sk-upstream-bravo-1111bbbb"
KEY_C = "gsk_charlie_2222cccc"  # not `sk-`-shaped: masking by pattern alone would miss it
SECRETS = (KEY_A, KEY_B, KEY_C)
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"


# --- fixtures and helpers ----------------------------------------------------------------------------


@pytest.fixture
async def admin(gateway: AppHarness) -> Account:
    return await make_admin(gateway)


@asynccontextmanager
async def running_pool(harness: AppHarness) -> AsyncIterator[UpstreamPool]:
    state = harness.state
    pool = UpstreamPool(
        sessions=state.sessions, keybox=state.keybox, clock=state.clock, settings=state.settings
    )
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def pool(gateway: AppHarness) -> AsyncIterator[UpstreamPool]:
    async with running_pool(gateway) as running:
        yield running


async def add_key(
    harness: AppHarness,
    admin: Account,
    secret: str,
    base_url: str,
    *,
    provider: str = "openai",
    proxy_id: int | None = None,
) -> int:
    body: dict[str, Any] = {"name": f"key-{secret[-4:]}", "provider": provider, "baseUrl": base_url}
    body |= {"apiKey": secret, "proxyId": proxy_id}
    response = await harness.client.post("/api/admin/factory-keys", json=body, headers=admin.auth)
    assert response.status_code == 201, response.text
    key_id: int = response.json()["id"]
    return key_id


async def add_proxy(harness: AppHarness, admin: Account, url: str) -> int:
    response = await harness.client.post(
        "/api/admin/proxies", json={"name": f"proxy-{url[-5:]}", "url": url}, headers=admin.auth
    )
    assert response.status_code == 201, response.text
    proxy_id: int = response.json()["id"]
    return proxy_id


async def key_row(harness: AppHarness, key_id: int) -> FactoryKey:
    async with harness.state.sessions() as session:
        row = await session.get(FactoryKey, key_id)
    assert row is not None
    return row


def chat_body(text: str = "hello there", **extra: Any) -> bytes:
    return orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]} | extra)


def messages_body(text: str = "hello there") -> bytes:
    return orjson.dumps(
        {
            "model": "claude-3-5-haiku-latest",
            "max_tokens": 32,
            "messages": [{"role": "user", "content": text}],
        }
    )


async def call(
    pool: UpstreamPool, body: bytes | None = None, *, provider: str = "openai", path: str = CHAT
) -> tuple[int, bytes, int]:
    """One request through the pool: (status, body, factory key id)."""
    reply = await pool.send(provider, path, body if body is not None else chat_body(), {})
    try:
        data = await reply.read()
    finally:
        reply.release()
    return reply.status, data, reply.factory_key_id


def keys_used(mock: MockUpstream) -> list[str]:
    """The upstream key of each request the mock received, in order."""
    return [
        r.headers.get("x-api-key") or r.headers["authorization"].removeprefix("Bearer ")
        for r in mock.requests
    ]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- base URL rule -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "path", "expected"),
    [
        ("https://api.openai.com", CHAT, "https://api.openai.com/v1/chat/completions"),
        ("https://api.openai.com/", CHAT, "https://api.openai.com/v1/chat/completions"),
        ("https://api.openai.com/v1", CHAT, "https://api.openai.com/v1/chat/completions"),
        ("https://api.openai.com/v1/", CHAT, "https://api.openai.com/v1/chat/completions"),
        ("https://api.groq.com/openai/v1", CHAT, "https://api.groq.com/openai/v1/chat/completions"),
        (
            "https://generativelanguage.googleapis.com/v1beta/openai",
            CHAT,
            "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions",
        ),
        ("https://api.anthropic.com", MESSAGES, "https://api.anthropic.com/v1/messages"),
        ("https://api.anthropic.com/v1", MESSAGES, "https://api.anthropic.com/v1/messages"),
        ("http://127.0.0.1:8000", "/v1/models", "http://127.0.0.1:8000/v1/models"),
    ],
)
def test_base_url_rule(base_url: str, path: str, expected: str) -> None:
    assert upstream_url(base_url, path) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, DEFAULT_COOLDOWN_S),
        ("", DEFAULT_COOLDOWN_S),
        ("7", 7.0),
        ("0", 1.0),
        ("2.5", 2.5),
        ("86400", 300.0),
        ("soon", DEFAULT_COOLDOWN_S),
        ("Thu, 15 Jan 2026 12:00:20 GMT", 20.0),
    ],
)
def test_retry_after_becomes_a_bounded_cooldown(value: str | None, expected: float) -> None:
    assert retry_after_s(value, ManualClock().now()) == expected


async def test_base_url_with_v1_reaches_the_same_path(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    await add_key(gateway, admin, KEY_A, mock.url + "/v1/")
    status, _, _ = await call(pool)
    assert status == 200
    assert mock.last_request.path == "/v1/chat/completions"


# --- selection -------------------------------------------------------------------------------------------


async def test_round_robin_spreads_requests_and_counts_them(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    a = await add_key(gateway, admin, KEY_A, mock.url)
    b = await add_key(gateway, admin, KEY_B, mock.url)
    results = [await call(pool) for _ in range(6)]
    assert all(status == 200 for status, _, _ in results)
    assert [key_id for _, _, key_id in results] == [a, b, a, b, a, b]
    assert keys_used(mock) == [KEY_A, KEY_B] * 3
    assert orjson.loads(results[0][1])["object"] == "chat.completion"
    await pool.flush()
    assert (await key_row(gateway, a)).requests_count == 3
    assert (await key_row(gateway, b)).requests_count == 3


async def test_counters_are_written_on_close(gateway: AppHarness, admin: Account, mock: MockUpstream) -> None:
    a = await add_key(gateway, admin, KEY_A, mock.url)
    async with running_pool(gateway) as pool:
        for _ in range(4):
            await call(pool)
    assert (await key_row(gateway, a)).requests_count == 4


async def test_openai_headers_carry_only_the_factory_key(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    await add_key(gateway, admin, KEY_A, mock.url)
    client_headers = {"authorization": "Bearer sk-trollllm-client", "x-custom": "1", "cookie": "c=1"}
    reply = await pool.send("openai", CHAT, chat_body(), client_headers)
    reply.release()
    headers = mock.last_request.headers
    assert headers["authorization"] == f"Bearer {KEY_A}"
    assert headers["content-type"] == "application/json"
    assert "x-api-key" not in headers and "x-custom" not in headers and "cookie" not in headers


async def test_anthropic_headers(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    await add_key(gateway, admin, KEY_A, mock.url, provider="anthropic")
    client_headers = {
        "anthropic-version": "2023-01-01",
        "anthropic-beta": "prompt-caching-2024-07-31",
        "x-api-key": "sk-trollllm-client",
        "authorization": "Bearer sk-trollllm-client",
    }
    status, body, _ = await call_with(pool, "anthropic", MESSAGES, messages_body(), client_headers)
    assert status == 200 and orjson.loads(body)["type"] == "message"
    headers = mock.last_request.headers
    assert headers["x-api-key"] == KEY_A
    assert headers["anthropic-version"] == "2023-01-01"
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers
    await call_with(pool, "anthropic", MESSAGES, messages_body(), {})
    headers = mock.last_request.headers
    assert headers["anthropic-version"] == "2023-06-01"
    assert "anthropic-beta" not in headers


async def call_with(
    pool: UpstreamPool, provider: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes, int]:
    reply = await pool.send(provider, path, body, headers)
    try:
        return reply.status, await reply.read(), reply.factory_key_id
    finally:
        reply.release()


async def test_keys_of_another_provider_are_not_used(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    await add_key(gateway, admin, KEY_A, mock.url, provider="anthropic")
    with pytest.raises(UpstreamUnavailable):
        await pool.send("openai", CHAT, chat_body(), {})
    assert mock.request_count == 0


async def test_no_keys_is_upstream_unavailable(pool: UpstreamPool) -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        await pool.send("openai", CHAT, chat_body(), {})
    assert caught.value.status_code == 503
    assert caught.value.error_type == "upstream_unavailable"
    assert caught.value.message == "No healthy upstream key is available"


async def test_disabled_key_is_never_used(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    a = await add_key(gateway, admin, KEY_A, mock.url)
    await add_key(gateway, admin, KEY_B, mock.url)
    patched = await gateway.client.patch(
        f"/api/admin/factory-keys/{a}", json={"status": "disabled"}, headers=admin.auth
    )
    assert patched.status_code == 200, patched.text
    for _ in range(5):
        await call(pool)
    assert keys_used(mock) == [KEY_B] * 5


async def test_invalidate_and_periodic_reload_pick_up_admin_changes(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool, clock: ManualClock
) -> None:
    a = await add_key(gateway, admin, KEY_A, mock.url)
    await call(pool)
    b = await add_key(gateway, admin, KEY_B, mock.url)
    await call(pool)
    assert keys_used(mock) == [KEY_A, KEY_A]  # cached
    pool.invalidate()
    assert {(await call(pool))[2] for _ in range(2)} == {a, b}
    await gateway.client.patch(
        f"/api/admin/factory-keys/{b}", json={"status": "disabled"}, headers=admin.auth
    )
    clock.advance(31)  # the periodic reload, without invalidate()
    mock.clear_requests()
    for _ in range(3):
        await call(pool)
    assert keys_used(mock) == [KEY_A] * 3


# --- failures and retries ----------------------------------------------------------------------------------


async def test_429_is_retried_on_another_key_which_cools_down(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool, clock: ManualClock
) -> None:
    a = await add_key(gateway, admin, KEY_A, mock.url)
    b = await add_key(gateway, admin, KEY_B, mock.url)
    mock.set_key_status(KEY_A, 429)  # with `retry-after: 1`
    status, _, key_id = await call(pool)
    assert (status, key_id) == (200, b)
    assert keys_used(mock) == [KEY_A, KEY_B]
    for _ in range(3):
        assert (await call(pool))[2] == b  # A is cooling down
    await pool.flush()
    row = await key_row(gateway, a)
    assert row.status == "cooling_down"
    assert row.cooldown_until == clock.now() + timedelta(seconds=1)
    assert row.last_error == "upstream answered 429"
    mock.set_key_status(KEY_A, None)
    clock.advance(2)
    assert {(await call(pool))[2] for _ in range(2)} == {a, b}
    await pool.flush()
    row = await key_row(gateway, a)
    assert (row.status, row.cooldown_until) == ("healthy", None)


async def test_500_is_retried_and_cools_down_for_the_default(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool, clock: ManualClock
) -> None:
    a = await add_key(gateway, admin, KEY_A, mock.url)
    b = await add_key(gateway, admin, KEY_B, mock.url)
    mock.fail_next(500)
    assert (await call(pool))[::2] == (200, b)
    clock.advance(DEFAULT_COOLDOWN_S - 1)
    assert {(await call(pool))[2] for _ in range(3)} == {b}
    clock.advance(2)
    assert {(await call(pool))[2] for _ in range(2)} == {a, b}
    await pool.flush()
    assert (await key_row(gateway, a)).status == "healthy"


async def test_connection_refused_is_retried_on_another_key(
    gateway: AppHarness,
    admin: Account,
    mock: MockUpstream,
    pool: UpstreamPool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    dead = await add_key(gateway, admin, KEY_C, f"http://127.0.0.1:{closed_port()}")
    alive = await add_key(gateway, admin, KEY_B, mock.url)
    for _ in range(4):
        assert (await call(pool))[::2] == (200, alive)
    await pool.flush()
    row = await key_row(gateway, dead)
    assert row.status == "cooling_down"
    assert row.last_error is not None and row.last_error.startswith("connection failed")
    assert_no_secret(row.last_error)
    assert_no_secret(caplog.text)
    assert keys_used(mock) == [KEY_B] * 4


async def test_every_key_failing_with_http_errors_returns_the_last_reply(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    a = await add_key(gateway, admin, KEY_A, mock.url)
    b = await add_key(gateway, admin, KEY_B, mock.url)
    mock.fail_next(500)
    mock.fail_next(503)
    status, body, key_id = await call(pool)
    assert (status, key_id) == (503, b)
    assert b"injected failure 503" in body
    await pool.flush()
    assert {(await key_row(gateway, k)).status for k in (a, b)} == {"cooling_down"}
    with pytest.raises(UpstreamUnavailable) as caught:  # both cooling now
        await pool.send("openai", CHAT, chat_body(), {})
    assert caught.value.headers == {"Retry-After": "1"}  # B's `retry-after: 1`


async def test_an_earlier_http_error_is_returned_when_the_last_attempt_cannot_connect(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    await add_key(gateway, admin, KEY_A, mock.url)
    await add_key(gateway, admin, KEY_C, f"http://127.0.0.1:{closed_port()}")
    mock.fail_next(429, retry_after=5)
    status, body, _ = await call(pool)
    assert status == 429 and b"injected failure 429" in body


async def test_attempts_are_bounded(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    for n in range(5):
        await add_key(gateway, admin, f"sk-upstream-many-{n:04d}xxxx", mock.url)
    mock.fail_next(502, count=5)
    assert (await call(pool))[0] == 502
    assert mock.request_count == 3


async def test_401_disables_the_key_and_persists_the_error(
    gateway: AppHarness,
    admin: Account,
    mock: MockUpstream,
    pool: UpstreamPool,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    a = await add_key(gateway, admin, KEY_A, mock.url)
    b = await add_key(gateway, admin, KEY_B, mock.url)
    mock.set_key_status(KEY_A, 401)
    assert (await call(pool))[::2] == (200, b)
    await pool.flush()
    row = await key_row(gateway, a)
    assert row.status == "disabled"
    assert row.last_error is not None
    assert row.last_error.startswith("upstream answered 401: ")
    assert "mock: this API key is set to fail with 401" in row.last_error
    assert_no_secret(row.last_error)
    assert_no_secret(caplog.text)
    listed = await gateway.client.get("/api/admin/factory-keys", headers=admin.auth)
    assert {k["id"]: k["status"] for k in listed.json()}[a] == "disabled"
    mock.set_key_status(KEY_A, None)
    clock.advance(3600)
    pool.invalidate()
    mock.clear_requests()
    for _ in range(4):
        await call(pool)
    assert keys_used(mock) == [KEY_B] * 4


async def test_only_rejected_keys_is_upstream_unavailable_not_the_401(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    await add_key(gateway, admin, KEY_A, mock.url)
    mock.set_key_status(KEY_A, 403)
    with pytest.raises(UpstreamUnavailable) as caught:
        await pool.send("openai", CHAT, chat_body(), {})
    assert_no_secret(str(caught.value) + repr(caught.value) + repr(caught.value.__cause__))


async def test_first_byte_timeout_of_a_stream_cools_the_key_down(
    app_factory: AppFactory, embedded_database_url: str, mock: MockUpstream
) -> None:
    harness = await app_factory(embedded_database_url, upstream_first_byte_timeout_s=0.3)
    root = await make_admin(harness)
    a = await add_key(harness, root, KEY_A, mock.url)
    b = await add_key(harness, root, KEY_B, mock.url)
    async with running_pool(harness) as pool:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable) as caught:
            await pool.send("openai", CHAT, chat_body("[mock hang=1]", stream=True), {}, stream=True)
        assert time.monotonic() - started < 3
        assert_no_secret(str(caught.value))
        await pool.flush()
    for key_id in (a, b):
        row = await key_row(harness, key_id)
        assert row.status == "cooling_down"
        assert row.last_error == "no response within the first-byte timeout (0.3 s)"


async def test_a_non_streaming_answer_may_take_longer_than_the_first_byte_timeout(
    app_factory: AppFactory, embedded_database_url: str, mock: MockUpstream
) -> None:
    harness = await app_factory(
        embedded_database_url, upstream_first_byte_timeout_s=0.2, upstream_total_timeout_s=5
    )
    root = await make_admin(harness)
    a = await add_key(harness, root, KEY_A, mock.url)
    async with running_pool(harness) as pool:
        reply = await pool.send("openai", CHAT, chat_body("[mock delay_ms=600]"), {})
        assert reply.status == 200
        assert orjson.loads(await reply.read())["choices"]
        await pool.flush()
    assert (await key_row(harness, a)).status == "healthy"


async def test_a_non_streaming_request_past_its_total_deadline_is_a_504_and_the_key_stays_healthy(
    app_factory: AppFactory, embedded_database_url: str, mock: MockUpstream
) -> None:
    harness = await app_factory(
        embedded_database_url, upstream_first_byte_timeout_s=0.2, upstream_total_timeout_s=0.5
    )
    root = await make_admin(harness)
    a = await add_key(harness, root, KEY_A, mock.url)
    b = await add_key(harness, root, KEY_B, mock.url)
    async with running_pool(harness) as pool:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await pool.send("openai", CHAT, chat_body("[mock hang=1]"), {})
        assert time.monotonic() - started < 3
        await pool.flush()
    assert len(mock.requests) == 1, "a request's own deadline is not retried on another key"
    for key_id in (a, b):
        assert (await key_row(harness, key_id)).status == "healthy"


# --- bodies -------------------------------------------------------------------------------------------------


async def test_stream_chunks_arrive_and_the_connection_is_released(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    await add_key(gateway, admin, KEY_A, mock.url)
    reply = await pool.send("openai", CHAT, chat_body("[mock reply_tokens=4]", stream=True), {})
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    received = b"".join([chunk async for chunk in reply.chunks()])
    assert received.rstrip().endswith(b"data: [DONE]")
    reply.release()  # idempotent after the iterator released it


async def test_idle_timeout_mid_stream_raises_stream_error(
    app_factory: AppFactory, embedded_database_url: str, mock: MockUpstream
) -> None:
    harness = await app_factory(embedded_database_url, upstream_idle_timeout_s=0.2)
    root = await make_admin(harness)
    await add_key(harness, root, KEY_A, mock.url)
    async with running_pool(harness) as pool:
        reply = await pool.send("openai", CHAT, chat_body("[mock chunk_delay_ms=3000]", stream=True), {})
        assert reply.status == 200
        received: list[bytes] = []
        with pytest.raises(UpstreamStreamError) as caught:
            async for chunk in reply.chunks():
                received.append(chunk)
        assert received  # the first event came before the stall
        assert "idle timeout" in str(caught.value)
        assert_no_secret(str(caught.value))


async def test_a_stream_longer_than_the_idle_timeout_whose_pieces_come_within_it_is_read_whole(
    app_factory: AppFactory, embedded_database_url: str, mock: MockUpstream
) -> None:
    # The idle timeout bounds each wait, not the stream: 12 pieces 100 ms apart (1.2 s) under a 0.4 s
    # idle timeout, so the one timer of the connection must move on from wait to wait.
    harness = await app_factory(embedded_database_url, upstream_idle_timeout_s=0.4)
    root = await make_admin(harness)
    await add_key(harness, root, KEY_A, mock.url)
    async with running_pool(harness) as pool:
        body = chat_body("[mock reply_tokens=12 chunk_delay_ms=100]", stream=True)
        reply = await pool.send("openai", CHAT, body, {})
        received = b"".join([chunk async for chunk in reply.chunks()])
    assert received.rstrip().endswith(b"data: [DONE]")
    assert received.count(b'"content":') >= 12


async def test_dropped_connection_mid_stream_raises_stream_error(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    await add_key(gateway, admin, KEY_A, mock.url)
    reply = await pool.send("openai", CHAT, chat_body("[mock drop_after=2]", stream=True), {})
    with pytest.raises(UpstreamStreamError):
        await reply.read()


# --- outbound proxies ---------------------------------------------------------------------------------------


async def test_key_bound_to_a_proxy_sends_through_it(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    async with ForwardingProxy(credentials=("scott", "tiger")) as proxy:
        proxy_id = await add_proxy(gateway, admin, proxy.url_with("scott:tiger"))
        await add_key(gateway, admin, KEY_A, mock.url, proxy_id=proxy_id)
        for _ in range(2):
            assert (await call(pool))[0] == 200
        reply = await pool.send("openai", CHAT, chat_body("[mock reply_tokens=3]", stream=True), {})
        streamed = b"".join([chunk async for chunk in reply.chunks()])
        assert b"[DONE]" in streamed
        assert proxy.forwarded == 3
        assert proxy.requests[0] == f"POST {mock.url}{CHAT}"
        expected = "Basic " + base64.b64encode(b"scott:tiger").decode()
        assert proxy.proxy_authorizations == [expected] * 3
        assert keys_used(mock) == [KEY_A] * 3
        assert "proxy-authorization" not in mock.last_request.headers


async def test_unreachable_proxy_cools_its_key_down(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    proxy_id = await add_proxy(gateway, admin, f"http://127.0.0.1:{closed_port()}")
    proxied = await add_key(gateway, admin, KEY_A, mock.url, proxy_id=proxy_id)
    direct = await add_key(gateway, admin, KEY_B, mock.url)
    assert (await call(pool))[::2] == (200, direct)
    await pool.flush()
    row = await key_row(gateway, proxied)
    assert row.status == "cooling_down"
    assert row.last_error == "cannot connect to the outbound proxy"


async def test_socks5_proxy_keys_are_left_out_with_a_clear_error(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    proxy_id = await add_proxy(gateway, admin, "socks5://127.0.0.1:1080")
    socks = await add_key(gateway, admin, KEY_A, mock.url, proxy_id=proxy_id)
    with pytest.raises(UpstreamUnavailable):
        await call(pool)
    direct = await add_key(gateway, admin, KEY_B, mock.url)
    pool.invalidate()
    assert {(await call(pool))[2] for _ in range(3)} == {direct}
    await pool.flush()
    row = await key_row(gateway, socks)
    assert (row.status, row.last_error) == ("healthy", SOCKS_UNSUPPORTED)


async def test_forwarding_proxy_tunnels_connect(mock: MockUpstream) -> None:
    async with ForwardingProxy() as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            target = mock.url.removeprefix("http://")
            writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            writer.write(
                f"GET /v1/models HTTP/1.1\r\nHost: {target}\r\nAuthorization: Bearer {KEY_A}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            response = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
        assert response.startswith(b"HTTP/1.1 200")
        assert b"gpt-4o-mini" in response
        assert proxy.forwarded == 1 and proxy.requests == [f"CONNECT {target}"]


# --- refusals by the outbound proxy itself (issue 11, defect 3) -----------------------------------------


async def _proxy_listing(gateway: AppHarness, admin: Account, proxy_id: int) -> dict[str, Any]:
    listed = await gateway.client.get("/api/admin/proxies", headers=admin.auth)
    assert listed.status_code == 200, listed.text
    (row,) = [proxy for proxy in listed.json() if proxy["id"] == proxy_id]
    return dict(row)


async def test_a_tinyproxy_401_for_wrong_proxy_credentials_cools_the_key_instead_of_disabling_it(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    async with ForwardingProxy(credentials=("scott", "tiger"), tinyproxy=True) as proxy:
        proxy_id = await add_proxy(gateway, admin, proxy.url_with("scott:wrong"))
        proxied = await add_key(gateway, admin, KEY_A, mock.url, proxy_id=proxy_id)
        direct = await add_key(gateway, admin, KEY_B, mock.url)
        assert (await call(pool))[::2] == (200, direct)
        await pool.flush()
        row = await key_row(gateway, proxied)
        assert row.status == "cooling_down"
        assert mock.request_count == 1  # only the direct key's request reached the provider


async def test_a_proxy_refusal_is_shown_on_the_proxy_for_the_admin(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    async with ForwardingProxy(credentials=("scott", "tiger"), tinyproxy=True) as proxy:
        proxy_id = await add_proxy(gateway, admin, proxy.url_with("scott:wrong"))
        await add_key(gateway, admin, KEY_A, mock.url, proxy_id=proxy_id)
        await add_key(gateway, admin, KEY_B, mock.url)
        await call(pool)
        await pool.flush()
        shown = await _proxy_listing(gateway, admin, proxy_id)
    assert shown["lastError"] == "proxy refused credentials"
    assert shown["lastErrorAt"] is not None
    assert "wrong" not in str(shown)  # the password is never shown


async def test_a_provider_401_through_a_proxy_still_disables_the_key(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool
) -> None:
    async with ForwardingProxy(credentials=("scott", "tiger"), tinyproxy=True) as proxy:
        proxy_id = await add_proxy(gateway, admin, proxy.url_with("scott:tiger"))
        proxied = await add_key(gateway, admin, KEY_A, mock.url, proxy_id=proxy_id)
        await add_key(gateway, admin, KEY_B, mock.url)
        mock.set_key_status(KEY_A, 401)
        await call(pool)
        await call(pool)
        await pool.flush()
        assert (await key_row(gateway, proxied)).status == "disabled"
        assert (await _proxy_listing(gateway, admin, proxy_id))["lastError"] is None


async def test_a_proxy_error_is_cleared_once_a_request_goes_through_it_again(
    gateway: AppHarness, admin: Account, mock: MockUpstream, pool: UpstreamPool, clock: ManualClock
) -> None:
    async with ForwardingProxy(credentials=("scott", "tiger"), tinyproxy=True) as proxy:
        proxy_id = await add_proxy(gateway, admin, proxy.url_with("scott:tiger"))
        await add_key(gateway, admin, KEY_A, mock.url, proxy_id=proxy_id)
        proxy.accept(("scott", "changed"))  # the proxy's password changed under the gateway
        with pytest.raises(UpstreamUnavailable):
            await call(pool)
        await pool.flush()
        assert (await _proxy_listing(gateway, admin, proxy_id))["lastError"] == "proxy refused credentials"
        proxy.accept(("scott", "tiger"))
        clock.advance(DEFAULT_COOLDOWN_S + 1)
        assert (await call(pool))[0] == 200
        await pool.flush()
        assert (await _proxy_listing(gateway, admin, proxy_id))["lastError"] is None
