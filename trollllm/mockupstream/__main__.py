"""Run the mock upstream standalone: ``python -m trollllm.mockupstream --port 9999``."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import signal
import sys
from collections.abc import Sequence

from trollllm.mockupstream.server import MockUpstream


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m trollllm.mockupstream",
        description="Mock OpenAI + Anthropic upstream provider on loopback (demo, tests, benchmarks).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=9999, help="port to bind, 0 for any free one (default: 9999)"
    )
    parser.add_argument(
        "--key",
        action="append",
        dest="keys",
        metavar="KEY",
        help="accepted API key (repeatable); default: accept any non-empty key",
    )
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio",
        help="event loop: uvloop (the default where it is installed: a cheaper fake under load) or asyncio",
    )
    return parser.parse_args(argv)


async def serve(host: str, port: int, keys: Sequence[str] | None) -> None:
    """Serve until SIGINT or SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    mock = MockUpstream(keys=keys)
    await mock.start(host, port)
    try:
        print(f"mock upstream listening on {mock.url}", flush=True)
        await stopping.wait()
    finally:
        await mock.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m trollllm.mockupstream``."""
    args = parse_args(argv)
    if args.loop == "uvloop":
        import uvloop  # only where asked for: the mock runs without it too

        uvloop.run(serve(args.host, args.port, args.keys))
    else:
        asyncio.run(serve(args.host, args.port, args.keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
