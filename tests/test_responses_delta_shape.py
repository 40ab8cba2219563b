"""A Responses stream's delta events are read by their learned shape (sequence number and text), and relayed
and billed exactly as parsing every event relays and bills them."""

from __future__ import annotations

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trollllm.responses.identity import ResponseIdentity
from trollllm.responses.stream import ResponsesStreamMeter
from trollllm.token_shape import learn_numbered_shape

_IDENTITY = ResponseIdentity("resp_gateway", "client-model", False, None)
_TEXT_DELTA = "response.output_text.delta"


def _delta(sequence: int, text: str, kind: str = _TEXT_DELTA, **extra: object) -> bytes:
    """A delta event as OpenAI spells it: its sequence number before its text."""
    payload = {"type": kind, "sequence_number": sequence, "item_id": "msg_1", "output_index": 0}
    payload |= {"content_index": 0, "delta": text, "logprobs": [], **extra}
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _parsing_every_event() -> ResponsesStreamMeter:
    meter = ResponsesStreamMeter(_IDENTITY)
    meter._learning_tries = 0  # never learns a shape: the full parse of every event, the yardstick
    return meter


def test_a_delta_event_teaches_its_shape_with_the_sequence_number_as_a_hole() -> None:
    meter = ResponsesStreamMeter(_IDENTITY)
    meter.feed(_delta(4, "Hi"))
    shape = meter._delta_shape
    assert shape is not None
    assert shape.read(_delta(1234, 'a "quoted" \u00e9')[:-2]) == (1234, 'a "quoted" \u00e9')


def test_deltas_read_by_shape_are_relayed_as_they_came_billed_and_keep_the_sequence() -> None:
    meter = ResponsesStreamMeter(_IDENTITY)
    raws = [_delta(n, text) for n, text in enumerate(["Hi", "", " there", "!"], start=3)]
    out = b"".join(meter.feed(raw) for raw in raws)
    assert meter._delta_shape is not None
    assert out == b"".join(raws)
    assert (meter.billed_usage().output_tokens, meter.events, meter._next_sequence) == (3, 4, 7)


def test_padded_deltas_of_any_padding_length_are_read_by_shape() -> None:
    meter = ResponsesStreamMeter(_IDENTITY)
    for n, padding in enumerate(["ab", "", "abcdefgh", 'x"y']):
        meter.feed(_delta(n, f"w{n}", obfuscation=padding))
    shape = meter._delta_shape
    assert shape is not None and shape.rest.between is not None
    assert shape.read(_delta(9, "w9", obfuscation="q")[:-2]) == (9, "w9")
    assert meter.billed_usage().output_tokens == 4


def test_a_stream_whose_first_deltas_are_reasoning_learns_its_text_deltas_after() -> None:
    meter = ResponsesStreamMeter(_IDENTITY)
    meter.feed(_delta(0, "think", "response.reasoning_summary_text.delta"))
    meter.feed(_delta(1, "Hi"))
    shape = meter._delta_shape
    assert shape is not None and shape.read(_delta(2, "there")[:-2]) == (2, "there")


def test_a_number_that_is_not_the_sequence_numbers_value_is_not_learned() -> None:
    # The sequence number's digits also spell `output_index`'s value just before it: only a split on the
    # sequence number's own value may be learned.
    payload = {"type": _TEXT_DELTA, "output_index": 7, "sequence_number": 7, "delta": "w"}
    raw = b"event: x\ndata: " + orjson.dumps(payload)
    shape = learn_numbered_shape(raw, 15, payload, "sequence_number", "delta")
    assert shape is not None and shape.read(raw.replace(b'"sequence_number":7', b'"sequence_number":8')) == (
        8,
        "w",
    )
    assert shape.read(raw.replace(b'"output_index":7', b'"output_index":8')) is None


_SEQUENCE_TWISTS = {
    "leading zero": b"07",
    "negative": b"-3",
    "float": b"5.0",
    "exponent": b"5e1",
    "huge": b"123456789012345678901234567890",
    "string": b'"5"',
    "space": b"5 ",
    "null": b"null",
}
_TEXTS = st.one_of(st.sampled_from(["", "w", "msg_1", "0"]), st.text(max_size=6))
_TWISTS = st.sampled_from(
    [
        "none",
        *_SEQUENCE_TWISTS,
        "two values",
        "not a string",
        "line break",
        "other item",
        "arguments",
        "echo",
        "two paddings",
    ]
)


def _twisted(sequence: int, text: str, twist: str, padding: str | None) -> bytes:
    """A delta event (padded, as OpenAI pads them, when `padding` is not None), or one that shares most of its
    bytes but is something else."""
    pad = {} if padding is None else {"obfuscation": padding}
    event = _delta(sequence, text, **pad)
    number = b'"sequence_number":' + str(sequence).encode()
    if twist in _SEQUENCE_TWISTS:
        return event.replace(number, b'"sequence_number":' + _SEQUENCE_TWISTS[twist], 1)
    spelled = orjson.dumps(text)
    if twist == "two values":
        return event.replace(b'"delta":' + spelled, b'"delta":' + spelled + b',"delta":""', 1)
    if twist == "not a string":
        return event.replace(b'"delta":' + spelled, b'"delta":null', 1)
    if twist == "line break":  # an SSE line break after the text: two lines, the second not a data line
        return event.replace(b'"delta":' + spelled, b'"delta":' + spelled + b"\n", 1)
    if twist == "other item":
        return event.replace(b'"msg_1"', b'"msg_2"', 1)
    if twist == "arguments":
        return _delta(sequence, text, "response.function_call_arguments.delta", **pad)
    if twist == "echo":  # the delta is "w", the text a later field's value (where a split could go wrong)
        return _delta(sequence, "w", x=text, **pad)
    if twist == "two paddings" and padding is not None:  # the padding's hole holding a string and more
        return event.replace(b'"obfuscation":', b'"obfuscation":"xy","delta":"","obfuscation":', 1)
    return event


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(_TEXTS, _TWISTS, st.text(max_size=5)), min_size=1, max_size=12),
    st.booleans(),
)
@example([("w", "echo", ""), ("", "echo", "")], False)  # a split on the later "w" would read x as the text
@example([("w", "none", ""), ("w", "leading zero", "")], False)  # `07` is not JSON: dropped, not a token
def test_reading_deltas_by_shape_relays_and_bills_exactly_what_parsing_every_event_does(
    events: list[tuple[str, str, str]], padded: bool
) -> None:
    by_shape, parsed = ResponsesStreamMeter(_IDENTITY), _parsing_every_event()
    for sequence, (text, twist, padding) in enumerate(events, start=8):
        raw = _twisted(sequence, text, twist, padding if padded else None)
        assert by_shape.feed(raw) == parsed.feed(raw)
    assert by_shape.flush() == parsed.flush()
    assert by_shape.billed_usage() == parsed.billed_usage()
    assert (by_shape.events, by_shape.dropped_events) == (parsed.events, parsed.dropped_events)
    assert by_shape._next_sequence == parsed._next_sequence  # (a cut stream's `response.failed` carries it)
