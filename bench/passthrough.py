"""The yardstick of issue 26: a bare aiohttp reverse proxy in front of the mock upstream.

    python bench/passthrough.py --upstream http://127.0.0.1:PORT [--port 0]

No authentication, billing, limits or logging: each request is forwarded as it came (method, path, query,
headers but the hop-by-hop ones, body) over a pool of keep-alive connections to the upstream, and the answer
is streamed back chunk by chunk as it arrives. What a gateway can at best be on this machine in the same
minute: bench/run.py measures it beside the gateway in every cell, and the gateway's throughput at
concurrency 32 is held to a share of it. It runs on uvloop, as `trollllm serve` does. It prints
`listening on http://127.0.0.1:PORT` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web

HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade", "te", "trailer")
)
SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def forward(request: web.Request) -> web.StreamResponse:
    """Send the request on to the upstream; stream its answer back as it comes."""
    headers = {name: value for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP}
    url = request.app[UPSTREAM] + request.path_qs
    body = await request.read()
    session = request.app[SESSION]
    async with session.request(request.method, url, headers=headers, data=body) as upstream:
        answer = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():
            if name.lower() not in HOP_BY_HOP:
                answer.headers.add(name, value)
        if upstream.content_length is not None:
            answer.content_length = upstream.content_length
        await answer.prepare(request)
        async for chunk in upstream.content.iter_any():
            await answer.write(chunk)
        await answer.write_eof()
    return answer


def make_app(upstream: str) -> web.Application:
    """The pass-through app: one catch-all route, one client session for its lifetime."""
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")

    async def session(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
        app[SESSION] = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def serve(upstream: str, host: str, port: int) -> None:
    """Serve until cancelled; print the URL once listening."""
    runner = web.AppRunner(make_app(upstream), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"listening on http://{host}:{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    """The command line."""
    parser = argparse.ArgumentParser(prog="bench/passthrough.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the mock's base URL")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (default)")
    args = parser.parse_args()
    uvloop.run(serve(args.upstream, args.host, args.port))


if __name__ == "__main__":
    main()
