"""SIGTERM mid-stream: the stream settles, whether it finishes in the graceful window or is cut at its end
(issue 11, defect 9; SPEC: "Graceful shutdown: in-flight requests finish, nothing accepted is lost").

The gateway here is a real `trollllm serve` process on SQLite; the test seeds its database through a gateway
run in process first, then talks to the subprocess with the official SDK and signals it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from conftest import TEST_SECRET, make_settings
from plan_helpers import free_port
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, build_world, serve
from sqlalchemy import func, select

from trollllm.accounts.tables import User
from trollllm.billing.tables import Hold, LedgerEntry
from trollllm.clock import SystemClock
from trollllm.db import create_sessionmaker, create_test_engine
from trollllm.mockupstream import MockUpstream, count_input_tokens
from trollllm.money import Money, Prices, TokenUsage, cost_of, parse_price_per_mtok
from trollllm.usage.tables import RequestLog

PRICES = Prices(parse_price_per_mtok(5), parse_price_per_mtok(25))


@dataclass
class ServedGateway:
    """A `trollllm serve` subprocess, its database and the seeded user's key."""

    process: subprocess.Popen[bytes]
    base_url: str
    database_url: str
    api_key: str
    username: str
    log: Path

    def errors_logged(self) -> list[str]:
        """The log lines at ERROR or above, and any with a traceback; except uvicorn's one-line notice
        that it cut requests at the graceful timeout (what the operator should know, no traceback)."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                record = {}
            if (
                "timeout graceful shutdown exceeded" in str(record.get("message"))
                and "exception" not in record
            ):
                continue
            if record.get("level") in ("ERROR", "CRITICAL") or "exception" in record or "Traceback" in line:
                found.append(line)
        return found


@contextlib.asynccontextmanager
async def served_gateway(
    tmp_path: Path, database_url: str, mock: MockUpstream, graceful_s: float
) -> AsyncIterator[ServedGateway]:
    """Seed the database in process, then serve it from a subprocess with that graceful timeout."""
    async with serve(make_settings(tmp_path, database_url), SystemClock()) as (harness, base_url):
        world = await build_world(harness, base_url, mock)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TROLLLLM_DATA_DIR": str(tmp_path),
        "TROLLLLM_SECRET": TEST_SECRET,
        "TROLLLLM_AUTO_MIGRATE": "false",
        "TROLLLLM_PORT": str(port),
        "TROLLLLM_LOG_LEVEL": "WARNING",
        "TROLLLLM_GRACEFUL_SHUTDOWN_S": str(graceful_s),
    }
    log = (tmp_path / "gateway.log").open("wb")  # its log lines, read by the tests (no ERROR expected)
    process = subprocess.Popen([sys.executable, "-m", "trollllm", "serve"], env=env, cwd=tmp_path, stderr=log)
    served = ServedGateway(
        process,
        f"http://127.0.0.1:{port}",
        database_url,
        world.user.api_key,
        "alice",
        tmp_path / "gateway.log",
    )
    try:
        async with httpx.AsyncClient(base_url=served.base_url) as client:
            for _ in range(500):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                assert process.poll() is None, "the gateway process exited at start"
                await asyncio.sleep(0.02)
        yield served
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()


async def _books(served: ServedGateway, request_id: str) -> tuple[RequestLog | None, Money, int, Money]:
    """(the request's log row, the user's balance, open holds, the request's ledger charges)."""
    engine = create_test_engine(served.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            row = await session.scalar(select(RequestLog).where(RequestLog.request_id == request_id))
            user = await session.scalar(select(User).where(User.username == served.username))
            assert user is not None
            holds = await session.scalar(select(func.count()).select_from(Hold))
            charged = await session.scalar(
                select(func.coalesce(func.sum(LedgerEntry.credits_delta_nanos), 0)).where(
                    LedgerEntry.request_id == request_id
                )
            )
            return row, Money(user.credits_nanos + user.ref_credits_nanos), int(holds or 0), Money(-charged)
    finally:
        await engine.dispose()


async def _stream_and_terminate(served: ServedGateway, content: str) -> tuple[str, str]:
    """Start a stream, SIGTERM the gateway after its first chunk, read on; (request id, text received)."""
    client = openai.AsyncOpenAI(base_url=served.base_url + "/v1", api_key=served.api_key, max_retries=0)
    text: list[str] = []
    async with (
        client,
        client.chat.completions.with_streaming_response.create(
            model=OPENAI_MODEL,
            messages=[{"role": "user", "content": content}],
            stream=True,
            max_tokens=200,
        ) as response,
    ):
        request_id = response.headers["x-request-id"]
        signalled = False
        with contextlib.suppress(openai.APIError, httpx.HTTPError):
            async for chunk in await response.parse():
                if chunk.choices and chunk.choices[0].delta.content:
                    text.append(chunk.choices[0].delta.content)
                if not signalled:
                    served.process.send_signal(signal.SIGTERM)
                    signalled = True
    return request_id, "".join(text)


async def test_a_stream_in_flight_at_sigterm_finishes_and_is_settled(
    tmp_path: Path, embedded_database_url: str
) -> None:
    content = "long answer [mock reply_tokens=20 chunk_delay_ms=100]"
    async with MockUpstream() as mock, served_gateway(tmp_path, embedded_database_url, mock, 30) as served:
        _, before, _, _ = await _books(served, "")
        request_id, text = await _stream_and_terminate(served, content)
        # uvicorn re-raises the signal once it has shut down: the exit status says SIGTERM.
        assert served.process.wait(timeout=20) in (0, -signal.SIGTERM)
    assert len(text.split()) == 20  # the whole answer arrived after the signal
    row, after, holds, charged = await _books(served, request_id)
    expected = cost_of(
        TokenUsage(count_input_tokens({"messages": [{"role": "user", "content": content}]}), 20), PRICES
    )
    assert row is not None and row.is_success and row.output_tokens == 20
    assert Money(row.credits_cost_nanos) == expected == charged == before - after
    assert holds == 0


async def test_a_stream_cut_by_the_graceful_timeout_is_charged_what_it_delivered(
    tmp_path: Path, embedded_database_url: str
) -> None:
    content = "endless answer [mock reply_tokens=150 chunk_delay_ms=50 no_usage=1]"
    async with MockUpstream() as mock, served_gateway(tmp_path, embedded_database_url, mock, 0.5) as served:
        _, before, _, _ = await _books(served, "")
        request_id, text = await _stream_and_terminate(served, content)
        assert served.process.wait(timeout=20) in (0, -signal.SIGTERM)
    row, after, holds, charged = await _books(served, request_id)
    assert row is not None, "the cut stream was never settled"
    assert (row.status_code, row.error_type, row.is_success) == (503, "server_shutdown", False)
    assert 0 < row.output_tokens < 150
    assert row.output_tokens >= len(text.split())  # every piece the client saw is charged
    assert Money(row.credits_cost_nanos) == charged == before - after > Money.ZERO
    assert holds == 0


async def _raw_stream_and_terminate(served: ServedGateway, path: str, body: dict[str, object]) -> bytes:
    """A stream read raw; SIGTERM once its first bytes came; everything received until it ends."""
    headers = {"Authorization": f"Bearer {served.api_key}", "anthropic-version": "2023-06-01"}
    received = b""
    async with (
        httpx.AsyncClient(base_url=served.base_url, timeout=20) as client,
        client.stream("POST", path, json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        async for chunk in response.aiter_bytes():
            if not received:
                served.process.send_signal(signal.SIGTERM)
            received += chunk
    return received


STREAMS = {
    "/v1/chat/completions": (OPENAI_MODEL, b"data: "),
    "/v1/messages": (ANTHROPIC_MODEL, b"event: error\ndata: "),
}


@pytest.mark.parametrize("path", sorted(STREAMS))
async def test_a_stream_cut_by_the_graceful_timeout_ends_with_an_error_event_in_its_format(
    tmp_path: Path, embedded_database_url: str, path: str
) -> None:
    model, prefix = STREAMS[path]
    content = "endless answer [mock reply_tokens=150 chunk_delay_ms=50]"
    body = {
        "model": model,
        "max_tokens": 200,
        "stream": True,
        "messages": [{"role": "user", "content": content}],
    }
    async with MockUpstream() as mock, served_gateway(tmp_path, embedded_database_url, mock, 0.5) as served:
        received = await _raw_stream_and_terminate(served, path, body)
        assert served.process.wait(timeout=20) in (0, -signal.SIGTERM)
    events = [event for event in received.split(b"\n\n") if event.strip()]
    errors = [event for event in events if b'"server_shutdown"' in event]
    assert len(errors) == 1, events[-3:]
    assert errors[0].startswith(prefix)
    payload = orjson.loads(errors[0].removeprefix(prefix))
    assert payload["error"]["type"] == "server_shutdown"
    assert served.errors_logged() == []


@pytest.mark.parametrize("path", sorted(STREAMS))
async def test_a_request_still_waiting_upstream_at_the_graceful_timeout_gets_a_json_503_server_shutdown(
    tmp_path: Path, embedded_database_url: str, path: str
) -> None:
    model, _ = STREAMS[path]
    content = "slow answer [mock delay_ms=8000]"
    body = {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": content}]}
    async with MockUpstream() as mock, served_gateway(tmp_path, embedded_database_url, mock, 0.5) as served:
        _, before, _, _ = await _books(served, "")
        headers = {"Authorization": f"Bearer {served.api_key}", "anthropic-version": "2023-06-01"}
        async with httpx.AsyncClient(base_url=served.base_url, timeout=20) as client:
            call = asyncio.create_task(client.post(path, json=body, headers=headers))
            while mock.request_count == 0:  # admitted, held and waiting upstream
                await asyncio.sleep(0.01)
            served.process.send_signal(signal.SIGTERM)
            response = await call
        assert served.process.wait(timeout=20) in (0, -signal.SIGTERM)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    if path == "/v1/messages":
        assert answer["type"] == "error"
    assert answer["error"]["type"] == "server_shutdown"
    row, after, holds, charged = await _books(served, response.headers["x-request-id"])
    assert row is not None
    assert (row.status_code, row.error_type, row.is_success) == (503, "server_shutdown", False)
    assert charged == Money.ZERO and before == after and holds == 0
    assert served.errors_logged() == []
