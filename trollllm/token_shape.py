"""A stream's token event, learned once: the bytes around its text, so later tokens are read without a parse.

Most of a stream is token events that differ only in their text (OpenAI: `data: {"id":…,"choices":[{"index":0,
"delta":{"content":"…"},…}],…}`; Anthropic: `event: content_block_delta` and `{"type":"content_block_delta",
"index":0,"delta":{"type":"text_delta","text":"…"}}`). Once one has been parsed, its bytes before the text
(the *prefix*) and after it (the *suffix*) are kept. A later event made of that prefix, one JSON string and
that suffix parses, by JSON's grammar, to the learned event with that string as its text: reading the string
alone meters it exactly, for a fraction of the whole event's parse. Any other event is parsed as before.

OpenAI pads each chunk with an `obfuscation` string of random length and letters (on by default, to hide
token lengths from a network observer): a shape may have that second hole, after the text, whose value is
read as one JSON string and otherwise ignored.

A Responses stream's delta events also carry a `sequence_number` that grows by one per event: a
`NumberedShape` is a token shape after such an integer hole.

Exactness rests on two checks. When learning, the fixed bytes are tried around probe values: the event they
make must parse to the learned payload with the probes in the holes, so each hole is a value's place and
nowhere else. When reading, the fixed bytes around a string hole end and begin with its quotes, and the hole,
quotes included, must parse: JSON text that begins and ends with a quote parses only if it is exactly one
string, and no raw line break can hide in one (JSON forbids them inside a string), so the event stays one SSE
data line. Any split of an event into the fixed bytes and such values is one the probe vouched for, so where
the text ends need not be known in advance: the first place the bytes between the holes occur will do (if it
is not a split of that kind, the event is parsed whole).
"""

from __future__ import annotations

from typing import Any

import orjson

# Texts no model writes (they hold a NUL): where they land in the probe's parse is where the holes are.
_PROBE = "\x00trollllm-token-shape-probe"
_PADDING_PROBE = "\x00trollllm-padding-probe"
_PROBE_NUMBER = 9_876_543_210
_ZERO = 0x30
_MAX_DIGITS = 20  # (a sequence number longer than this is parsed whole)
# How many token events of one stream may try to teach a shape (each try costs a second parse).
LEARNING_TRIES = 3


class TokenShape:
    """The bytes around the text (and the padding, if any) of one stream's token events.

    The prefix ends with the text's opening quote, the suffix begins with the last hole's closing quote,
    and `between` runs from the text's closing quote to the padding's opening one.
    """

    __slots__ = (
        "_padding_start",
        "_start",
        "_suffix_length",
        "between",
        "prefix",
        "renamed_prefix",
        "suffix",
    )

    def __init__(self, prefix: bytes, suffix: bytes, renamed_prefix: bytes, between: bytes | None) -> None:
        self.prefix = prefix
        self.suffix = suffix
        self.renamed_prefix = renamed_prefix
        """The prefix as the client gets it (the model renamed), or `prefix` itself."""
        self.between = between
        """The bytes between the text and the padding; None when the shape has no padding."""
        self._start = len(prefix)
        self._suffix_length = len(suffix)
        # From just past the text's closing quote to the padding's opening quote.
        self._padding_start = 0 if between is None else len(between) - 2

    @classmethod
    def around(cls, prefix: bytes, between: bytes | None, suffix: bytes) -> TokenShape:
        """The shape of the events `prefix`, a JSON string, [`between`, a JSON string,] `suffix`."""
        quoted = None if between is None else b'"' + between + b'"'
        return cls(prefix + b'"', b'"' + suffix, prefix + b'"', quoted)

    def text_of(self, event: bytes, start: int = 0) -> str | None:
        """The text of `event` (from `start`) if it is of this shape, else None."""
        if not event.startswith(self.prefix, start) or not event.endswith(self.suffix):
            return None
        start += self._start - 1  # the text's opening quote
        end = len(event) - self._suffix_length + 1  # past the last hole's closing quote
        try:
            if self.between is not None:
                text_end = event.find(self.between, start + 1, end) + 1  # past the text's closing quote
                if not text_end:
                    return None
                orjson.loads(event[text_end + self._padding_start : end])  # the padding: one string
                end = text_end
            text: str = orjson.loads(event[start:end])
        except orjson.JSONDecodeError:
            return None
        return text

    def for_client(self, event: bytes) -> bytes:
        """`event` (of this shape) as the client gets it."""
        if self.renamed_prefix is self.prefix:
            return event
        return self.renamed_prefix + event[self._start :]

    def renamed(self, old: bytes, new: bytes) -> TokenShape | None:
        """This shape with the client getting `old` replaced by `new` (its first time) in the prefix; None
        when the prefix does not hold `old` (then the event is renamed otherwise: not by shape)."""
        if old not in self.prefix:
            return None
        return TokenShape(self.prefix, self.suffix, self.prefix.replace(old, new, 1), self.between)


def learn_shape(
    event: bytes,
    data_start: int,
    payload: dict[str, Any],
    holder: dict[str, Any],
    field: str,
    padding_field: str | None = None,
) -> TokenShape | None:
    """The shape of a token event whose data (from `data_start`) parsed to `payload`, its text being
    `holder[field]` (`holder` inside `payload`) and its padding, if it has one, `payload[padding_field]`;
    None when the holes cannot be told apart (or the text is spelled with escapes or spaces).

    The client gets the event's own prefix: `TokenShape.renamed` makes the shape of a renamed one.
    """
    holes = _holes(payload, holder, field, padding_field)
    if holes is None or (parts := _split(event, data_start, holes)) is None:
        return None
    if not _parses_to(_probed(parts)[data_start:], payload, _swaps(payload, holder, field, padding_field)):
        return None
    return TokenShape.around(*parts)


class NumberedShape:
    """A token shape after an integer that changes per event: a Responses event's `sequence_number`.

    The event is the *head*, a JSON integer (digits only, no leading zero), then a `TokenShape`'s event.
    The integer ends at its first byte that is not a digit, and the shape's prefix never starts with one, so
    the first place that prefix's first byte occurs after the head is the only split to try.
    """

    __slots__ = ("_after", "_head_length", "_search_end", "head", "rest")

    def __init__(self, head: bytes, rest: TokenShape) -> None:
        self.head = head
        self.rest = rest
        self._head_length = len(head)
        self._after = rest.prefix[:1]
        self._search_end = len(head) + _MAX_DIGITS + 1

    def read(self, event: bytes) -> tuple[int, str] | None:
        """`(number, text)` of `event` if it is of this shape, else None."""
        if not event.startswith(self.head):
            return None
        start = self._head_length
        end = event.find(self._after, start, self._search_end)
        digits = event[start:end]
        if end <= start or not digits.isdigit() or (digits[0] == _ZERO and end - start > 1):
            return None
        text = self.rest.text_of(event, end)
        return None if text is None else (int(digits), text)


def learn_numbered_shape(
    event: bytes,
    data_start: int,
    payload: dict[str, Any],
    number_field: str,
    field: str,
    padding_field: str | None = None,
) -> NumberedShape | None:
    """`learn_shape` for an event whose data holds `payload[number_field]`, an integer, before its text
    `payload[field]` (and its padding, if any, `payload[padding_field]`); None when the holes cannot be told
    apart."""
    number = payload.get(number_field)
    holes = _holes(payload, payload, field, padding_field)
    if type(number) is not int or number < 0 or holes is None:
        return None
    digits = str(number).encode()
    key = orjson.dumps(number_field) + b":"
    at = event.find(key + digits, data_start)
    if at < 0:
        return None
    start = at + len(key)
    head, rest = event[:start], event[start + len(digits) :]
    parts = _split(rest, 0, holes)
    if parts is None or parts[0][:1].isdigit():
        return None
    probe = head + str(_PROBE_NUMBER).encode() + _probed(parts)
    swaps = [(payload, number_field, _PROBE_NUMBER), *_swaps(payload, payload, field, padding_field)]
    if not _parses_to(probe[data_start:], payload, swaps):
        return None
    return NumberedShape(head, TokenShape.around(*parts))


def _holes(
    payload: dict[str, Any], holder: dict[str, Any], field: str, padding_field: str | None
) -> tuple[str, str | None] | None:
    """The text and the padding (or None) a shape can be learned around; None when it cannot."""
    text = holder.get(field)
    if type(text) is not str or "\x00" in text:
        return None
    padding = None if padding_field is None else payload.get(padding_field)
    if padding is not None and (type(padding) is not str or "\x00" in padding):
        return None
    return text, padding


def _split(
    event: bytes, lowest: int, holes: tuple[str, str | None]
) -> tuple[bytes, bytes | None, bytes] | None:
    """`(prefix, between, suffix)` around the holes' values as spelled in `event` (the text at or after
    `lowest`, the padding after it: their last places); None when they are not there."""
    text, padding = holes
    encoded = orjson.dumps(text)
    end = len(event)
    if padding is not None:
        encoded_padding = orjson.dumps(padding)
        end = event.rfind(encoded_padding)
        if end < lowest:
            return None
        suffix = event[end + len(encoded_padding) :]
    at = event.rfind(encoded, lowest, end)
    if at < 0:
        return None
    if padding is None:
        return event[:at], None, event[at + len(encoded) :]
    return event[:at], event[at + len(encoded) : end], suffix


def _probed(parts: tuple[bytes, bytes | None, bytes]) -> bytes:
    """The event of these parts with the probe texts in its holes."""
    prefix, between, suffix = parts
    padding = b"" if between is None else between + orjson.dumps(_PADDING_PROBE)
    return prefix + orjson.dumps(_PROBE) + padding + suffix


def _swaps(
    payload: dict[str, Any], holder: dict[str, Any], field: str, padding_field: str | None
) -> list[tuple[dict[str, Any], str, object]]:
    """Where the probes go in the payload: the text, and the padding if the payload has one."""
    swaps: list[tuple[dict[str, Any], str, object]] = [(holder, field, _PROBE)]
    if padding_field is not None and payload.get(padding_field) is not None:
        swaps.append((payload, padding_field, _PADDING_PROBE))
    return swaps


def _parses_to(
    probe: bytes, payload: dict[str, Any], swaps: list[tuple[dict[str, Any], str, object]]
) -> bool:
    """Whether `probe` parses to `payload` with each `(holder, field, value)` of `swaps` set in it."""
    try:
        probed = orjson.loads(probe)
    except orjson.JSONDecodeError:
        return False
    saved = [(holder, field, holder[field]) for holder, field, _ in swaps]
    for holder, field, value in swaps:
        holder[field] = value
    try:
        return bool(probed == payload)
    finally:
        for holder, field, value in saved:
            holder[field] = value
