"""A stream's token events are read by their learned shape, and billed exactly as a full parse bills them."""

from __future__ import annotations

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trollllm.proxy.relay import StreamMeter
from trollllm.token_shape import learn_shape
from trollllm.wire import WireFormat


def _openai(content: str, **extra: object) -> bytes:
    event = {"id": "c1", "model": "up", "choices": [{"index": 0, "delta": {"content": content}}], **extra}
    return b"data: " + orjson.dumps(event) + b"\n\n"


def _anthropic(text: str) -> bytes:
    data = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
    return b"event: content_block_delta\ndata: " + orjson.dumps(data) + b"\n\n"


def _parsing_every_event(wire: WireFormat, client_wants_usage: bool = False) -> StreamMeter:
    meter = StreamMeter(wire, "up", "client", client_wants_usage)
    meter._learning_tries = 0  # never learns a shape: the full parse of every event, the yardstick
    return meter


def test_a_token_event_teaches_its_shape() -> None:
    meter = StreamMeter(WireFormat.OPENAI, "up", "client", False)
    meter.feed(_openai("w1"))
    shape = meter._token_shape
    assert shape is not None
    assert shape.text_of(_openai('w2 \u00e9 "quoted"')[:-2]) == 'w2 \u00e9 "quoted"'


def test_later_token_events_are_billed_their_non_empty_texts_with_the_model_renamed() -> None:
    meter = StreamMeter(WireFormat.OPENAI, "up", "client", False)
    out = b"".join(meter.feed(_openai(text)) for text in ("w1", "", "w2", "w3", ""))
    assert meter._token_shape is not None
    assert meter.billed_usage().output_tokens == 3
    assert out.count(b'"model":"client"') == 5 and b'"up"' not in out


def test_an_anthropic_stream_learns_its_shape_and_bills_non_empty_texts() -> None:
    meter = StreamMeter(WireFormat.ANTHROPIC, "up", "client", False)
    out = b"".join(meter.feed(_anthropic(text)) for text in ("w1", "w2", "", "w3"))
    assert meter._token_shape is not None and meter.events == 4
    assert meter.billed_usage().output_tokens == 3
    assert out == b"".join(_anthropic(text) for text in ("w1", "w2", "", "w3"))


def test_an_event_with_more_than_one_value_between_prefix_and_suffix_is_parsed_whole() -> None:
    meter = StreamMeter(WireFormat.OPENAI, "up", "client", False)
    meter.feed(_openai("w1"))
    # The learned prefix, then `"x","content":""`, then the learned suffix: the last `content` wins, empty.
    spliced = _openai("w1").replace(b'"w1"', b'"x","content":""')
    meter.feed(spliced)
    assert meter.billed_usage().output_tokens == 1


def test_a_split_that_is_not_the_texts_value_is_not_learned() -> None:
    event = {"id": "w", "model": "up", "choices": [{"index": 0, "delta": {"content": "w"}}], "x": "w"}
    raw = b"data: " + orjson.dumps(event)
    delta = event["choices"][0]["delta"]
    assert learn_shape(raw, 6, event, delta, "content") is None  # (the last "w" is x's)


def test_a_text_spelled_with_escapes_is_not_learned_but_is_billed() -> None:
    meter = StreamMeter(WireFormat.OPENAI, "up", "client", False)
    for _ in range(5):
        meter.feed(b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"\\u0077"}}]}\n\n')
    assert meter._token_shape is None and meter.billed_usage().output_tokens == 5


_TEXTS = st.one_of(st.sampled_from(["", "w", "c1", "up"]), st.text(max_size=6))
_TWISTS = st.sampled_from(
    ["none", "other id", "two values", "not a string", "line break", "role", "usage", "echo", "two paddings"]
)


def _twisted(text: str, twist: str, padding: str | None) -> bytes:
    """A token event (padded, as OpenAI pads them, when `padding` is not None), or one that shares most of a
    token event's bytes but is something else."""
    pad = {} if padding is None else {"obfuscation": padding}
    token = _openai(text, **pad)
    if twist == "other id":
        return token.replace(b'"c1"', b'"c2"')
    if twist == "two values":
        return token.replace(orjson.dumps(text), orjson.dumps(text) + b',"content":""', 1)
    if twist == "not a string":
        return token.replace(orjson.dumps(text), b"null", 1)
    if twist == "line break":  # an SSE line break after the text: two lines, the second not a data line
        return token.replace(orjson.dumps(text), orjson.dumps(text) + b"\n", 1)
    if twist == "two paddings" and padding is not None:  # the padding's hole holding a string and more
        later = b'"obfuscation":"xy","choices":[{"index":0,"delta":{"content":""}}],"obfuscation":'
        return token.replace(b'"obfuscation":', later, 1)
    if twist == "role":
        event = {"id": "c1", "model": "up", "choices": [{"index": 0, "delta": {"role": "assistant"}}], **pad}
        return b"data: " + orjson.dumps(event) + b"\n\n"
    if twist == "echo":  # the content is "w", the text a later field's value (where a split could go wrong)
        return _openai("w", x=text, **pad)
    if twist == "usage":
        return _openai(text, usage={"prompt_tokens": 3, "completion_tokens": 2}, **pad)
    return token


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(_TEXTS, _TWISTS, st.text(max_size=5)), min_size=1, max_size=12),
    st.booleans(),
)
@example([("w", "echo", ""), ("", "echo", "")], False)  # a split on the later "w" would read x as the text
def test_reading_by_shape_bills_and_relays_exactly_what_parsing_every_event_does(
    events: list[tuple[str, str, str]], padded: bool
) -> None:
    by_shape = StreamMeter(WireFormat.OPENAI, "up", "client", True)
    parsed = _parsing_every_event(WireFormat.OPENAI, client_wants_usage=True)
    for text, twist, padding in events:
        raw = _twisted(text, twist, padding if padded else None)
        assert by_shape.feed(raw) == parsed.feed(raw)
    assert by_shape.flush() == parsed.flush()
    assert by_shape.billed_usage() == parsed.billed_usage()
    assert by_shape.events == parsed.events


def test_openai_padding_of_any_length_is_read_around() -> None:
    meter = StreamMeter(WireFormat.OPENAI, "up", "client", False)
    texts = [("w1", "ab"), ("", "abcdef"), ("w2", ""), ("w3", 'x"y')]
    out = b"".join(meter.feed(_openai(text, obfuscation=padding)) for text, padding in texts)
    shape = meter._token_shape
    assert shape is not None and shape.between is not None
    assert shape.text_of(_openai("w4", obfuscation="q")[:-2]) == "w4"
    assert meter.billed_usage().output_tokens == 3
    assert out.count(b'"model":"client"') == 4 and out.count(b'"obfuscation"') == 4


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_TEXTS, st.booleans()), min_size=1, max_size=12))
def test_an_anthropic_stream_read_by_shape_is_billed_as_parsing_every_event_bills_it(
    events: list[tuple[str, bool]],
) -> None:
    by_shape = StreamMeter(WireFormat.ANTHROPIC, "up", "client", False)
    parsed = _parsing_every_event(WireFormat.ANTHROPIC)
    for text, spliced in events:
        raw = _anthropic(text)
        if spliced:  # the learned prefix and suffix around two values
            raw = raw.replace(orjson.dumps(text), orjson.dumps(text) + b',"text":""', 1)
        assert by_shape.feed(raw) == parsed.feed(raw)
    assert by_shape.billed_usage() == parsed.billed_usage()
    assert by_shape.events == parsed.events
