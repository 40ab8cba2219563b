"""The native route's stream relay reads each event whatever its spelling: the same Responses events, in
any JSON spelling, line ends, chunking, with comments between them, reach the client the same (with the
gateway's id and model) and are billed the same."""

from __future__ import annotations

import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from test_stream_metering import _spell

from trollllm.money import Money, TokenUsage
from trollllm.responses.identity import ResponseIdentity
from trollllm.responses.stream import ResponsesStreamMeter

_RESPONSE = {"id": "resp_up", "object": "response", "model": "up", "status": "in_progress", "output": []}
_ITEM = {"id": "msg_1", "type": "message", "role": "assistant", "content": []}
_USAGE = {"input_tokens": 9, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 3}
_EVENTS: list[dict[str, Any]] = [
    {"type": "response.created", "response": _RESPONSE},
    {"type": "response.in_progress", "response": _RESPONSE},
    {"type": "response.output_item.added", "output_index": 0, "item": _ITEM},
    {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "delta": ""},
    {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "delta": "Hi"},
    {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "delta": " there"},
    {"type": "response.output_item.done", "output_index": 0, "item": {**_ITEM, "status": "completed"}},
    {"type": "response.completed", "response": {**_RESPONSE, "status": "completed", "usage": _USAGE}},
]
_IDENTITY = ResponseIdentity("resp_gateway", "client-model", False, None)


def _relay(raws: list[bytes], rnd: random.Random) -> tuple[ResponsesStreamMeter, list[dict[str, Any]]]:
    """Feed the events in random chunks; the client's events (cost released) and the meter."""
    meter = ResponsesStreamMeter(_IDENTITY)
    stream = b"".join(raws)
    cuts = sorted(rnd.sample(range(len(stream) + 1), k=min(3, len(stream) + 1)))
    out = b"".join(meter.feed(stream[a:b]) for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True))
    out += meter.flush() + meter.release_held(Money(1))
    events = [
        orjson.loads(line[5:]) for line in out.replace(b"\r", b"").split(b"\n") if line.startswith(b"data:")
    ]
    return meter, events


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    count=st.integers(1, len(_EVENTS)),
    line_end=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_every_spelling_of_the_same_native_events_is_relayed_and_billed_the_same(
    seed: int, count: int, line_end: str
) -> None:
    rnd = random.Random(seed)
    compact = [
        b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
        for event in _EVENTS[:count]
    ]
    spelled = []
    for event in _EVENTS[:count]:
        lines = [f": keep-alive {rnd.random()}"] if rnd.random() < 0.3 else []
        if rnd.random() < 0.8:
            lines.append(f"event:{rnd.choice(['', ' '])}{event['type']}")
        lines.append(f"data:{rnd.choice(['', ' '])}{_spell(event, rnd)}")
        spelled.append((line_end.join(lines) + line_end * 2).encode())
    expected, expected_events = _relay(compact, rnd)
    meter, events = _relay(spelled, rnd)
    assert events == expected_events
    assert [event["type"] for event in events] == [event["type"] for event in _EVENTS[:count]]
    for event in events:
        if "response" in event:
            assert (event["response"]["id"], event["response"]["model"]) == ("resp_gateway", "client-model")
    assert meter.billed_usage() == expected.billed_usage()
    deltas = sum(1 for event in _EVENTS[:count] if event.get("delta"))
    completed = count == len(_EVENTS)
    billed = TokenUsage(input_tokens=5, output_tokens=3, cache_hit_tokens=4) if completed else None
    assert meter.billed_usage() == (billed or TokenUsage(output_tokens=deltas))


def test_an_event_whose_data_is_not_json_is_dropped_and_the_rest_relayed() -> None:
    meter = ResponsesStreamMeter(_IDENTITY)
    delta = orjson.dumps(_EVENTS[4])
    out = meter.feed(b"event: response.output_text.delta\ndata: {not json\n\n")
    out += meter.feed(b"event: response.output_text.delta\ndata: " + delta + b"\n\n")
    assert out == b"event: response.output_text.delta\ndata: " + delta + b"\n\n"
    assert (meter.dropped_events, meter.events, meter.billed_usage().output_tokens) == (1, 1, 1)
