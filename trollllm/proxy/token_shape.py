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

Exactness rests on two checks. When learning, the prefix and suffix are tried around a probe string: the
event they make must parse to the learned payload with the probe as its text, so the split falls on the
text's value and nowhere else. When reading, each hole must hold exactly one JSON string (a quote at each
end, and it parses to a `str`): no raw line break can hide in one (JSON forbids them inside a string), so the
event stays one SSE data line. Any split of an event into the fixed bytes and two such strings is one the
probe vouched for, so where the first hole ends need not be known in advance: the first place the bytes
between the holes occur will do (if it is not a split of that kind, the event is parsed whole).
"""

from __future__ import annotations

from typing import Any

import orjson

# Texts no model writes (they hold a NUL): where they land in the probe's parse is where the holes are.
_PROBE = "\x00trollllm-token-shape-probe"
_PADDING_PROBE = "\x00trollllm-padding-probe"
_QUOTE = 0x22
# How many token events of one stream may try to teach a shape (each try costs a second parse).
LEARNING_TRIES = 3


class TokenShape:
    """The bytes around the text (and the padding, if any) of one stream's token events."""

    __slots__ = ("_fixed", "_start", "_suffix_length", "between", "prefix", "renamed_prefix", "suffix")

    def __init__(self, prefix: bytes, suffix: bytes, renamed_prefix: bytes, between: bytes | None) -> None:
        self.prefix = prefix
        self.suffix = suffix
        self.renamed_prefix = renamed_prefix
        """The prefix as the client gets it (the model renamed), or `prefix` itself."""
        self.between = between
        """The bytes between the text and the padding; None when the shape has no padding."""
        self._start = len(prefix)
        self._suffix_length = len(suffix)
        # The shortest event of this shape: empty strings in the holes.
        self._fixed = len(prefix) + len(suffix) + 2 + (0 if between is None else len(between) + 2)

    def text_of(self, event: bytes) -> str | None:
        """The text of `event` if it is of this shape, else None."""
        if len(event) < self._fixed or not event.startswith(self.prefix) or not event.endswith(self.suffix):
            return None
        end = len(event) - self._suffix_length
        if self.between is not None:
            padding_at = event.find(self.between, self._start, end)
            if padding_at < 0 or _string(event[padding_at + len(self.between) : end]) is None:
                return None
            end = padding_at
        return _string(event[self._start : end])

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


def _string(piece: bytes) -> str | None:
    """`piece` read as exactly one JSON string (no space around it), or None."""
    if len(piece) < 2 or piece[0] != _QUOTE or piece[-1] != _QUOTE:
        return None
    try:
        value = orjson.loads(piece)
    except orjson.JSONDecodeError:
        return None
    return value if type(value) is str else None


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
    text = holder.get(field)
    if type(text) is not str or "\x00" in text:
        return None
    padding = None if padding_field is None else payload.get(padding_field)
    if padding is not None and (type(padding) is not str or "\x00" in padding):
        return None
    encoded = orjson.dumps(text)
    end = len(event)
    if padding is not None:
        encoded_padding = orjson.dumps(padding)
        end = event.rfind(encoded_padding)
        if end < data_start:
            return None
        suffix = event[end + len(encoded_padding) :]
    at = event.rfind(encoded, data_start, end)
    if at < 0:
        return None
    prefix = event[:at]
    if padding is None:
        between, suffix = None, event[at + len(encoded) :]
        probe = prefix + orjson.dumps(_PROBE) + suffix
    else:
        between = event[at + len(encoded) : end]
        probe = prefix + orjson.dumps(_PROBE) + between + orjson.dumps(_PADDING_PROBE) + suffix
    try:
        probed = orjson.loads(probe[data_start:])
    except orjson.JSONDecodeError:
        return None
    holder[field] = _PROBE
    if padding_field is not None and padding is not None:
        payload[padding_field] = _PADDING_PROBE
    try:
        same_but_the_holes = probed == payload
    finally:
        holder[field] = text
        if padding_field is not None and padding is not None:
            payload[padding_field] = padding
    return TokenShape(prefix, suffix, prefix, between) if same_but_the_holes else None
