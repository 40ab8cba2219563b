"""Micro-benchmark of the stream meter: microseconds per SSE event, for both wire formats.

    PYTHONPATH=. .venv/bin/python bench/meter.py

Feeds the mock upstream's own frames (one content token per event, compact and spaced JSON) through
`StreamMeter.feed`, one frame per chunk, as the relay does.
"""

from __future__ import annotations

import json
import time

from trollllm.mockupstream.anthropic_format import AnthropicWire
from trollllm.mockupstream.controls import NO_CONTROLS, plan_reply
from trollllm.mockupstream.openai_format import OpenAIWire
from trollllm.proxy.relay import StreamMeter
from trollllm.proxy.requests import WireFormat

ROUNDS = 2000


def _spaced(frames: list[bytes]) -> list[bytes]:
    out = []
    for frame in frames:
        lines = []
        for line in frame.rstrip(b"\n").split(b"\n"):
            if line.startswith(b"data: {"):
                line = b"data: " + json.dumps(json.loads(line[6:])).encode()
            lines.append(line)
        out.append(b"\n".join(lines) + b"\n\n")
    return out


def _frames(wire: WireFormat) -> list[bytes]:
    body = {"model": "up-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    body["stream_options"] = {"include_usage": True}
    reply = plan_reply(body, NO_CONTROLS, max_tokens=16, response_id="r1", created=1)
    renderer = OpenAIWire() if wire is WireFormat.OPENAI else AnthropicWire()
    return renderer.events(reply, body)


def measure(wire: WireFormat, frames: list[bytes]) -> float:
    """Microseconds per event over `ROUNDS` whole streams."""
    started = time.perf_counter()
    for _ in range(ROUNDS):
        meter = StreamMeter(wire, "up-model", "client-model", False)
        for frame in frames:
            meter.feed(frame)
        meter.flush()
        meter.billed_usage()
    return (time.perf_counter() - started) / (ROUNDS * len(frames)) * 1e6


def main() -> None:
    """Print µs/event for each wire format and spelling."""
    for wire in WireFormat:
        frames = _frames(wire)
        for spelling, sample in (("compact", frames), ("spaced", _spaced(frames))):
            best = min(measure(wire, sample) for _ in range(5))
            print(f"{wire.value:9s} {spelling:7s} {best:6.2f} µs/event ({len(sample)} events/stream)")


if __name__ == "__main__":
    main()
