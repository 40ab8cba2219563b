"""Translated Responses streams, event by event (SPEC §6): a chat completions or Anthropic stream becomes
named Responses events with consecutive sequence numbers, whatever the chunking; each text delta is the
event OpenAI writes (its fields, JSON escapes included) and the deltas add up to the final text; a stream
the gateway cuts ends in `response.failed` with the usage delivered."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from responses_helpers import HmacSealer, chunkings, parse_events, sse

from trollllm.errors import UpstreamError
from trollllm.money import Money
from trollllm.responses.translate import translate_responses_request
from trollllm.responses.translate.streams import ResponsesStream
from trollllm.wire import WireFormat

PIECES = ["Hel", "lo, ", '"world"', " — ünï\\cödé\n", "!"]


def _stream(wire: WireFormat) -> ResponsesStream:
    body = {"model": "m", "input": "hi", "stream": True}
    translation = translate_responses_request(body, wire, HmacSealer())
    return translation.stream("client-model", "resp_1")


def _upstream(wire: WireFormat, pieces: list[str]) -> bytes:
    if wire is WireFormat.OPENAI:
        chunks: list[dict[str, Any]] = [
            {"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
        ]
        first = {"role": "assistant"}  # some providers repeat the role beside each piece
        for number, piece in enumerate(pieces):
            delta = {**first, "content": piece} if number % 2 else {"content": piece}
            chunks.append({"id": "c1", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        chunks.append({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        chunks.append({"id": "c1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5}})
        return sse(chunks, done=True)
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 9, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    for piece in pieces:
        events.append(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        )
    events += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ]
    return sse(events, named=True)


def _without_ids(events: list[dict[str, Any]]) -> str:
    """The events with each new item's random id as `ID` and times as 0 (the rest: the same bytes)."""
    text = re.sub(r"\b(msg|rs|fc|ws)_[0-9a-f]{32}\b", "ID", orjson.dumps(events).decode())
    return re.sub(r'"(created_at|completed_at)":\d+', r'"\1":0', text)


def _run(wire: WireFormat, pieces: list[bytes]) -> list[dict[str, Any]]:
    stream = _stream(wire)
    out = b"".join(stream.feed(piece) for piece in pieces) + stream.flush()
    return parse_events(out + stream.release_held(Money(1_000)))


@pytest.mark.parametrize("wire", [WireFormat.OPENAI, WireFormat.ANTHROPIC], ids=["chat", "messages"])
def test_text_deltas_are_openais_events_whatever_the_chunking(wire: WireFormat) -> None:
    outputs = [_run(wire, pieces) for pieces in chunkings(_upstream(wire, PIECES))]
    assert all(_without_ids(events) == _without_ids(outputs[0]) for events in outputs[1:])
    events = outputs[0]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    deltas = [event for event in events if event["type"] == "response.output_text.delta"]
    message = next(event for event in events if event["type"] == "response.output_item.added")["item"]
    assert deltas == [
        {
            "type": "response.output_text.delta",
            "item_id": message["id"],
            "output_index": 0,
            "content_index": 0,
            "delta": piece,
            "logprobs": [],
            "sequence_number": delta["sequence_number"],
        }
        for piece, delta in zip(PIECES, deltas, strict=True)
    ]
    final = events[-1]
    assert final["type"] == "response.completed"
    assert final["response"]["output"][0]["content"][0]["text"] == "".join(PIECES)
    assert final["response"]["usage"]["output_tokens"] == 5 and final["response"]["cost"] == 0.000001


@pytest.mark.parametrize("wire", [WireFormat.OPENAI, WireFormat.ANTHROPIC], ids=["chat", "messages"])
def test_a_cut_stream_ends_in_response_failed_with_the_output_delivered(wire: WireFormat) -> None:
    whole = _upstream(wire, PIECES)
    stream = _stream(wire)
    out = stream.feed(whole[: whole.index(b'"!"')])  # cut before the last piece
    out += stream.cut(UpstreamError())
    events = parse_events(out + stream.release_held(Money(500)))
    failed = events[-1]
    assert failed["type"] == "response.failed" and failed["sequence_number"] == len(events) - 1
    assert failed["response"]["error"] == {
        "code": "upstream_error",
        "message": UpstreamError.default_message,
    }
    delivered = sum(event["type"] == "response.output_text.delta" for event in events)
    assert delivered == len(PIECES) - 1
    assert failed["response"]["usage"]["output_tokens"] == delivered
    assert stream.cut(UpstreamError()) == b""  # a response ends once
