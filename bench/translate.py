"""Micro-benchmark of translation: the CPU a request to a model of the other format adds.

    PYTHONPATH=. .venv/bin/python bench/translate.py

For each direction and mode, one request as `bench/run.py` sends it (its prompt, `max_tokens` 64, the
mock's 16-token answer) runs through exactly the proxy steps that differ: parsing the body, translating it
(`ProxyRequest.translate_to`), the upstream body, then the answer — a JSON reply (`rewrite_json_reply`,
or `Translation.reply`) or the mock's SSE frames fed one per chunk (`StreamMeter`, or the translated
stream), its usage and its final held events. The figure is process CPU time per request, the best of
`REPEATS` runs of `ROUNDS` requests; "added" is translated minus untranslated, the issue's budget 0.3 ms.
A `tools` variant adds two tool definitions and two tool calls in the answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from trollllm.mockupstream.anthropic_format import AnthropicWire
from trollllm.mockupstream.controls import Controls, plan_reply
from trollllm.mockupstream.openai_format import OpenAIWire
from trollllm.money import Money
from trollllm.proxy.relay import StreamMeter, rewrite_json_reply
from trollllm.proxy.requests import parse_request
from trollllm.wire import WireFormat

ROUNDS = 2000
REPEATS = 5
PROMPT = "Write a short deterministic reply for the TrollLLM benchmark."
BUDGET_MS = 0.3
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = {
    WireFormat.OPENAI: [
        {"type": "function", "function": {"name": f"tool{i}", "parameters": SCHEMA}} for i in range(2)
    ],
    WireFormat.ANTHROPIC: [{"name": f"tool{i}", "input_schema": SCHEMA} for i in range(2)],
}


def _request(wire: WireFormat, stream: bool, tools: bool) -> bytes:
    body: dict[str, Any] = {
        "model": "bench-model",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": stream,
    }
    if tools:
        body["tools"] = TOOLS[wire]
    return orjson.dumps(body)


def _answer(upstream: WireFormat, stream: bool, tools: bool) -> list[bytes]:
    body: dict[str, Any] = {"model": "up", "messages": [{"role": "user", "content": PROMPT}]}
    body["stream_options"] = {"include_usage": True}
    body["tools"] = TOOLS[upstream]
    reply = plan_reply(
        body, Controls(tool_calls=2 if tools else 0), max_tokens=64, response_id="r1", created=1
    )
    renderer = OpenAIWire() if upstream is WireFormat.OPENAI else AnthropicWire()
    return renderer.events(reply, body) if stream else [renderer.completion(reply, body)]


def _one(client: WireFormat, upstream: WireFormat, stream: bool, raw: bytes, answer: list[bytes]) -> None:
    request = parse_request(raw, client)
    if upstream is not client:
        request.translate_to(upstream)
    request.upstream_body("up", 64)
    translation = request.translation
    if not stream:
        if translation is not None:
            translation.reply(answer[0], "bench-model")
        else:
            rewrite_json_reply(answer[0], client, "bench-model")
        return
    meter = (
        translation.stream("bench-model", False)
        if translation is not None
        else StreamMeter(client, "up", "bench-model", False, report_cost=True)
    )
    for frame in answer:
        meter.feed(frame)
    meter.flush()
    meter.billed_usage()
    meter.release_held(Money(17_500))


def measure(run: Callable[[], None]) -> float:
    """CPU milliseconds per call of `run`, the best of `REPEATS` runs of `ROUNDS` calls."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.process_time()
        for _ in range(ROUNDS):
            run()
        best = min(best, (time.process_time() - started) / ROUNDS * 1000)
    return best


def main() -> None:
    """Print CPU ms per request, untranslated and translated, and what translation adds."""
    worst = 0.0
    print(f"{'client -> model':24s} {'mode':6s} {'tools':5s} {'same':>9s} {'translated':>11s} {'added':>9s}")
    for client, upstream in (
        (WireFormat.OPENAI, WireFormat.ANTHROPIC),
        (WireFormat.ANTHROPIC, WireFormat.OPENAI),
    ):
        for stream in (False, True):
            for tools in (False, True):
                # the same model and the same upstream answer, called in its own format and in the other
                answer = _answer(upstream, stream, tools)
                own, other = _request(upstream, stream, tools), _request(client, stream, tools)
                same = measure(lambda: _one(upstream, upstream, stream, own, answer))  # noqa: B023 (run at once)
                translated = measure(lambda: _one(client, upstream, stream, other, answer))  # noqa: B023
                added = translated - same
                worst = max(worst, added)
                direction = f"{client.value} -> {upstream.value}"
                mode = "stream" if stream else "json"
                figures = f"{same:8.4f}ms {translated:10.4f}ms {added:8.4f}ms"
                print(f"{direction:24s} {mode:6s} {tools!s:5s} {figures}")
    verdict = "PASS" if worst <= BUDGET_MS else "FAIL"
    print(f"most added: {worst:.4f} ms per request (budget {BUDGET_MS} ms): {verdict}")


if __name__ == "__main__":
    main()
