"""A request whose body never fully arrives is never forwarded nor charged (issue 29, item 10).

The client announces a `Content-Length` longer than what it sends (the first bytes a valid JSON body on
their own), then goes away: the gateway must not take what came for the whole body.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import orjson
import pytest
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World
from test_proxy_errors import balance

FORMATS = {"/v1/chat/completions": OPENAI_MODEL, "/v1/messages": ANTHROPIC_MODEL}


def _answered(world: World, path: str) -> float:
    """How many requests on `path` the gateway has finished (its Prometheus counter)."""
    total = 0.0
    for metric in world.state.telemetry.registry.collect():
        for sample in metric.samples:
            if sample.name == "trollllm_requests_total" and sample.labels.get("route") == path:
                total += sample.value
    return total


async def _send_truncated(world: World, path: str, body: bytes, missing: int) -> None:
    """Send the headers (a length `missing` bytes too long) and `body`, wait until it is read, then close."""
    address = urlsplit(world.base_url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {world.user.api_key}\r\nx-api-key: {world.user.api_key}\r\n"
        f"anthropic-version: 2023-06-01\r\nContent-Length: {len(body) + missing}\r\n\r\n"
    ).encode()
    writer.write(head + body)
    await writer.drain()
    await asyncio.sleep(0.3)  # the server has read what came and waits for the rest
    writer.close()
    await writer.wait_closed()
    del reader


@pytest.mark.parametrize("path", sorted(FORMATS))
async def test_a_body_cut_short_by_a_departing_client_is_never_forwarded_nor_charged(
    world: World, path: str
) -> None:
    before = await balance(world)
    answered = _answered(world, path)
    body = orjson.dumps(
        {"model": FORMATS[path], "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]}
    )

    await _send_truncated(world, path, body, missing=50)
    for _ in range(500):
        if _answered(world, path) > answered:
            break
        await asyncio.sleep(0.01)

    assert _answered(world, path) == answered + 1, "the gateway never finished the request"
    assert world.mock.request_count == 0, "an incomplete body was sent upstream"
    assert await balance(world) == before
    history = await world.gateway.client.get("/api/user/request-history", headers=world.user.auth)
    assert history.json()["total"] == 0
