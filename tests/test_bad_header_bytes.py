"""Bad bytes in a request's head get a JSON 400 in the endpoint's error shape, not the HTTP server's plain
text (issue 29, item 10): bare CR, bare LF, obs-fold and NUL in header lines, sent on a raw socket to the
gateway served by uvicorn as in production (`trollllm.serving`)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import orjson
import pytest
from proxy_world import World

BAD_HEADERS = {
    "bare CR": b"X-Note: one\rX-Other: two\r\n",
    "bare LF in a value": b"X-Note: one\nX-Other: two\r\n",
    "obs-fold": b"X-Note: one\r\n  folded onto the next line\r\n",
    "NUL": b"X-Note: o\x00ne\r\n",
}


async def _raw(world: World, head: bytes) -> tuple[int, dict[str, str], bytes]:
    address = urlsplit(world.base_url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(head)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    header_block, _, body = rest.partition(b"\r\n\r\n")
    headers = {}
    for line in header_block.split(b"\r\n"):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("bad", sorted(BAD_HEADERS))
async def test_bad_header_bytes_get_a_json_400_in_the_endpoints_error_shape(world: World, bad: str) -> None:
    for path, method in (("/v1/chat/completions", "POST"), ("/v1/messages", "POST"), ("/api/user/me", "GET")):
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: gateway\r\nContent-Length: 2\r\n".encode()
            + BAD_HEADERS[bad]
            + b"\r\n{}"
        )
        status, headers, body = await _raw(world, head)

        assert status == 400, (path, body)
        assert headers["content-type"] == "application/json"
        assert int(headers["content-length"]) == len(body)
        parsed = orjson.loads(body)
        if path == "/v1/messages":
            assert parsed["type"] == "error"
        error = parsed["error"]
        assert error["type"] == "invalid_request_error"
        assert "header" in error["message"]
        if path == "/v1/chat/completions":
            assert error["code"] == "invalid_request_error"
    assert world.mock.request_count == 0
