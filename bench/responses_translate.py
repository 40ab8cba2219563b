"""Micro-benchmark of `/v1/responses`: the CPU its three routes add to a request, in process.

    PYTHONPATH=. .venv/bin/python bench/responses_translate.py [--deltas 16,200] [--profile ROUTE:MODE]

For each route and mode, one request as `bench/run.py` sends it (its prompt, `max_output_tokens` 64, the
mock's answer of `--deltas` tokens) runs through exactly the proxy steps that differ from a chat completions
request: parsing the Responses body, its input and media count, the route (native: the body as sent;
translated: `translate_responses_request`), the upstream body (twice when translated: once to bound the
hold), then the answer (a JSON reply, or the mock's SSE frames fed one per chunk, the usage and the held
final event). The baseline is the chat completions (or messages) request of the same prompt to the same
upstream format, untranslated (`parse_request`, its upstream body, `rewrite_json_reply` or `StreamMeter`).
The figure is process CPU time per request, the best of `REPEATS` runs of `ROUNDS` requests.
Targets (issue 23): native within 10 % of chat completions; translation adds ≤ 0.3 ms per request. Only
the steps that differ run here, so the native route's 10 % is of a whole chat completions request's
gateway CPU as `bench/run.py` measured it on an idle machine (`REQUEST_CPU_MS`, bench/README.md).
`--profile native:stream` (or `chat:json`, `messages:stream`, …) prints a cProfile of that case instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable
from typing import Any

import orjson

from trollllm.mockupstream.anthropic_format import AnthropicWire
from trollllm.mockupstream.controls import Controls, plan_reply
from trollllm.mockupstream.openai_format import OpenAIWire
from trollllm.mockupstream.responses_format import ResponsesWire
from trollllm.money import Money
from trollllm.proxy.relay import StreamMeter, rewrite_json_reply
from trollllm.proxy.requests import parse_request
from trollllm.responses.identity import ResponseIdentity
from trollllm.responses.native import NativeRoute
from trollllm.responses.request import parse_responses_request, url_media_items
from trollllm.responses.routing import conversation_input
from trollllm.responses.translate import translate_responses_request
from trollllm.responses.translated import TranslatedRoute
from trollllm.wire import WireFormat

ROUNDS = 1000
REPEATS = 5
PROMPT = "Write a short deterministic reply for the TrollLLM benchmark."
NATIVE_RATIO = 0.10
REQUEST_CPU_MS = {"json": 0.36, "stream": 0.50}
"""A whole c=1 chat completions request's gateway CPU, the lower figures of 2026-12-06 (bench/README.md)."""
BUDGET_MS = 0.3
ROUTES = {"native": WireFormat.RESPONSES, "chat": WireFormat.OPENAI, "messages": WireFormat.ANTHROPIC}
_RENDERERS = {
    WireFormat.RESPONSES: ResponsesWire,
    WireFormat.OPENAI: OpenAIWire,
    WireFormat.ANTHROPIC: AnthropicWire,
}


class _NoSealer:
    """The bench's requests carry no reasoning: nothing is sealed."""

    def seal(self, plaintext: bytes) -> str:
        return plaintext.decode()

    def unseal(self, sealed: str) -> bytes:
        return sealed.encode()


def _responses_request(stream: bool) -> bytes:
    body = {
        "model": "bench-model",
        "input": PROMPT,
        "max_output_tokens": 64,
        "store": False,
        "stream": stream,
    }
    return orjson.dumps(body)


def _chat_request(wire: WireFormat, stream: bool) -> bytes:
    body = {"model": "bench-model", "max_tokens": 64, "messages": [{"role": "user", "content": PROMPT}]}
    return orjson.dumps(body | {"stream": stream})


def _answer(upstream: WireFormat, stream: bool, deltas: int) -> list[bytes]:
    body: dict[str, Any] = {"model": "up", "messages": [{"role": "user", "content": PROMPT}], "input": PROMPT}
    body["stream_options"] = {"include_usage": True}
    reply = plan_reply(
        body, Controls(reply_tokens=deltas), max_tokens=max(64, deltas), response_id="r1", created=1
    )
    renderer = _RENDERERS[upstream]()
    return renderer.events(reply, body) if stream else [renderer.completion(reply, body)]


def _responses(upstream: WireFormat, stream: bool, raw: bytes, answer: list[bytes]) -> None:
    """What `trollllm.proxy.responses.create_response` and the relay do for one request."""
    request = parse_responses_request(raw)
    input_items = conversation_input(None, request.input_items)
    url_media_items(input_items)
    identity = ResponseIdentity("resp_bench", "bench-model", request.store, None)
    route: NativeRoute | TranslatedRoute
    if upstream is WireFormat.RESPONSES:
        route = NativeRoute(request.body, input_items, identity)
    else:
        body = {**request.body, "input": input_items}
        route = TranslatedRoute(translate_responses_request(body, upstream, _NoSealer()), identity)
        route.upstream_body("up", 1, stream=False)  # the hold's bound of the translated body
    route.upstream_body("up", 64, stream)
    if not stream:
        route.reply(answer[0], "bench-model")
        return
    meter = route.stream("bench-model", True)
    for frame in answer:
        meter.feed(frame)
    meter.flush()
    meter.billed_usage()
    meter.release_held(Money(17_500))


def _chat(upstream: WireFormat, stream: bool, raw: bytes, answer: list[bytes]) -> None:
    request = parse_request(raw, upstream)
    request.upstream_body("up", 64)
    if not stream:
        rewrite_json_reply(answer[0], upstream, "bench-model")
        return
    meter = StreamMeter(upstream, "up", "bench-model", True, report_cost=True)
    for frame in answer:
        meter.feed(frame)
    meter.flush()
    meter.billed_usage()
    meter.release_held(Money(17_500))


def _cases(route: str, stream: bool, deltas: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """(the chat completions or messages baseline, the Responses request) of one cell."""
    upstream = ROUTES[route]
    chat_wire = WireFormat.ANTHROPIC if upstream is WireFormat.ANTHROPIC else WireFormat.OPENAI
    chat_raw, chat_answer = _chat_request(chat_wire, stream), _answer(chat_wire, stream, deltas)
    raw, answer = _responses_request(stream), _answer(upstream, stream, deltas)
    return (
        lambda: _chat(chat_wire, stream, chat_raw, chat_answer),
        lambda: _responses(upstream, stream, raw, answer),
    )


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
    """Print CPU ms per request, chat completions and Responses, and the verdicts."""
    parser = argparse.ArgumentParser(prog="bench/responses_translate.py")
    parser.add_argument("--deltas", default="16,200", help="the mock's answer lengths (default: 16,200)")
    parser.add_argument("--profile", metavar="ROUTE:MODE", help="cProfile one case, e.g. messages:stream")
    args = parser.parse_args()
    deltas = [int(part) for part in args.deltas.split(",") if part]
    if args.profile:
        route, _, mode = args.profile.partition(":")
        _, responses = _cases(route, mode == "stream", deltas[-1])
        profile = cProfile.Profile()
        profile.runcall(lambda: [responses() for _ in range(ROUNDS)])
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return
    failed = False
    first_base: dict[str, float] = {}  # the native baseline of the first answer length, by mode
    print(f"{'route':9s} {'mode':6s} {'deltas':>6s} {'chat':>9s} {'responses':>10s} {'added':>9s}  target")
    for route in ROUTES:
        for stream in (False, True):
            for count in deltas if stream else deltas[:1]:
                chat, responses = _cases(route, stream, count)
                base, ours = measure(chat), measure(responses)
                added = ours - base
                mode = "stream" if stream else "json"
                if route == "native":
                    # the measured request had 16 deltas: more deltas add what they add to the baseline here
                    whole = REQUEST_CPU_MS[mode] + base - first_base.setdefault(mode, base)
                    passed = added <= NATIVE_RATIO * whole
                    target = (
                        f"{added / whole * 100:+.1f} % of a {whole:.2f} ms request (≤ {NATIVE_RATIO:.0%})"
                    )
                else:
                    passed = added <= BUDGET_MS
                    target = f"≤ {BUDGET_MS} ms"
                failed = failed or not passed
                figures = f"{base:8.4f}ms {ours:9.4f}ms {added:8.4f}ms"
                print(f"{route:9s} {mode:6s} {count:6d} {figures}  {'PASS' if passed else 'FAIL'} {target}")
    print("every target met" if not failed else "a target was missed")


if __name__ == "__main__":
    main()
