"""What one mock request asks for: its controls, its token counts and its planned reply.

Everything here is a pure function of the request, so tests can predict the mock's
answer exactly (see :func:`count_input_tokens` and :func:`reply_text`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens counted for each message (and for a non-empty system prompt) on top of its words."""

DEFAULT_REPLY_TOKENS = 16
DEFAULT_THINKING_TOKENS = 8
"""Thinking tokens of a reply to a request with `thinking` enabled (billed as output, like Anthropic)."""
TOOL_CALL_TOKENS = 2
"""Output tokens of one mock tool call (its arguments, sent in two stream pieces)."""
"""Reply length, in tokens, when neither ``max_tokens`` nor ``reply_tokens`` asks for less."""

REPLY_VOCABULARY: tuple[str, ...] = (
    "This",
    "is",
    "a",
    "deterministic",
    "reply",
    "from",
    "the",
    "TrollLLM",
    "mock",
    "upstream",
    "provider",
    "used",
    "for",
    "tests",
    "and",
    "demos.",
)
"""The reply's words, one token each, repeated cyclically for longer replies."""

_DIRECTIVE = re.compile(r"\[mock\s([^\]]*)\]")
# `[mock-tool Read file_path="/tmp/x"]`: call the request's tool of that name with these string arguments.
_TOOL_DIRECTIVE = re.compile(r"\[mock-tool\s+([A-Za-z0-9_-]+)((?:\s+[A-Za-z_]+=\"[^\"\]]*\")*)\s*\]")
_TOOL_ARGUMENT = re.compile(r"([A-Za-z_]+)=\"([^\"\]]*)\"")
_SETTING = re.compile(r"([a-z_]+)=([^\s\]]*)")
_HEADER_PREFIX = "x-mock-"


class MockRequestError(ValueError):
    """The request is malformed or names an unknown or invalid mock control (answered with 400)."""


@dataclass(frozen=True, slots=True)
class Controls:
    """Per-request behaviour chosen with ``[mock name=value]`` directives or ``x-mock-name`` headers.

    All values are non-negative integers (flags take ``1``/``0``). Times are milliseconds.
    """

    status: int | None = None
    retry_after: int = 1
    delay_ms: int = 0
    first_byte_delay_ms: int = 0
    chunk_delay_ms: int = 0
    reply_tokens: int | None = None
    cached: int = 0
    cache_write: int = 0
    drop_after: int | None = None
    hang: bool = False
    bad_json: bool = False
    no_usage: bool = False
    spaced_json: bool = False
    """Streams: JSON written as Python's ``json.dumps`` does (``"content": "w1"``)."""
    gzip: bool = False
    """Streams: gzip-compressed (``content-encoding: gzip``) although ``identity`` was asked for."""
    junk_stream: bool = False
    """Streams: an event stream of which no event parses."""
    tool_calls: int = 0
    """After its text, the reply calls this many of the request's tools (in turn), in parallel."""
    reasoning: int = 0
    """Responses: the reply reasons this many tokens first (a reasoning item; billed as output)."""
    thinking_tokens: int | None = None
    """Anthropic, with `thinking` enabled: the thinking block's tokens (default `DEFAULT_THINKING_TOKENS`)."""
    web_searches: int = 0
    """The searches the upstream reports running (Anthropic `server_tool_use.web_search_requests`, Responses
    `web_search_call` items)."""


_CONTROL_NAMES = frozenset(f.name for f in fields(Controls))
NO_CONTROLS = Controls()


@dataclass(frozen=True, slots=True)
class MockToolCall:
    """One tool call of a reply: the ``index``-th call, to the tool named ``name``."""

    index: int
    name: str
    named_input: tuple[tuple[str, str], ...] | None = None
    """The arguments a ``[mock-tool …]`` directive gave, or None for the default ones."""

    @property
    def arguments(self) -> str:
        """The call's arguments, compact JSON: ``{"index":0,"tool":"name"}`` (or the directive's)."""
        value: dict[str, Any] = (
            {"index": self.index, "tool": self.name} if self.named_input is None else dict(self.named_input)
        )
        return json.dumps(value, separators=(",", ":"))

    @property
    def argument_pieces(self) -> list[str]:
        """The arguments in the two pieces a stream sends them in."""
        half = len(self.arguments) // 2
        return [self.arguments[:half], self.arguments[half:]]


@dataclass(frozen=True, slots=True)
class Reply:
    """The mock's planned answer to one request, independent of the wire format."""

    response_id: str
    created: int
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    truncated: bool
    no_usage: bool
    tool_calls: tuple[MockToolCall, ...] = ()
    reasoning_tokens: int = 0
    thinking_tokens: int = 0
    web_searches: int = 0

    @property
    def billed_output_tokens(self) -> int:
        """The output tokens in the reply's usage: its thinking, its text, :data:`TOOL_CALL_TOKENS` per tool
        call, and its reasoning tokens."""
        return (
            self.thinking_tokens
            + self.output_tokens
            + TOOL_CALL_TOKENS * len(self.tool_calls)
            + self.reasoning_tokens
        )

    @property
    def thinking_pieces(self) -> list[str]:
        """The thinking block split into its tokens, as sent one per stream chunk."""
        return reply_pieces(self.thinking_tokens)

    @property
    def pieces(self) -> list[str]:
        """The reply split into its output tokens, as sent one per stream chunk."""
        return reply_pieces(self.output_tokens)

    @property
    def text(self) -> str:
        """The whole reply text."""
        return reply_text(self.output_tokens)


def reply_pieces(n: int) -> list[str]:
    """Return the first ``n`` reply tokens; every token but the first starts with a space."""
    size = len(REPLY_VOCABULARY)
    return [REPLY_VOCABULARY[i % size] if i == 0 else " " + REPLY_VOCABULARY[i % size] for i in range(n)]


def reply_text(n: int) -> str:
    """Return the text of an ``n``-token reply: ``n`` words of :data:`REPLY_VOCABULARY`, cycled."""
    return "".join(reply_pieces(n))


def _content_words(content: Any) -> int:
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, list):
        total = 0
        for block in content:
            if isinstance(block, str):
                total += len(block.split())
            elif isinstance(block, Mapping):
                kind = block.get("type")
                if kind == "text":
                    total += _content_words(block.get("text"))
                elif kind == "tool_result":
                    total += _content_words(block.get("content"))
        return total
    return 0


def count_input_tokens(body: Mapping[str, Any]) -> int:
    """Return the prompt tokens the mock reports for a request body (either wire format).

    Rule: for every entry of ``messages``, :data:`MESSAGE_OVERHEAD_TOKENS` (4) plus the
    number of whitespace-separated words of its content; plus, when the body has a
    non-empty top-level ``system`` (Anthropic), 4 plus its words. Content may be a
    string or a list of blocks, of which ``text`` blocks (and the content of
    ``tool_result`` blocks) count; other blocks count nothing. ``[mock ...]``
    directives are ordinary words and count too.

    The rule gives the same number for an OpenAI body and its Anthropic translation
    (system message vs ``system`` field). Cache tokens asked for with ``cached`` or
    ``cache_write`` come on top of it: this count is always the uncached input.
    """
    total = 0
    system = body.get("system")
    if system:
        total += MESSAGE_OVERHEAD_TOKENS + _content_words(system)
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping):
                total += MESSAGE_OVERHEAD_TOKENS + _content_words(message.get("content"))
    return total


def _last_user_text(body: Mapping[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "tool":
            return ""  # the answer after a tool's result carries no directive: the mock answers in text
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(
                    str(block.get("text", ""))
                    for block in content
                    if isinstance(block, Mapping) and block.get("type") == "text"
                )
            return ""
    return ""


def _setting(name: str, value: str, into: dict[str, int]) -> None:
    if name not in _CONTROL_NAMES:
        raise MockRequestError(f"unknown mock control {name!r}")
    if not value.isdigit():
        raise MockRequestError(f"mock control {name!r} needs a non-negative integer, got {value!r}")
    into[name] = int(value)


def parse_controls(body: Mapping[str, Any], headers: Iterable[tuple[str, str]]) -> Controls:
    """Read the controls of a request.

    Directives ``[mock name=value ...]`` (one or more settings per bracket, any number
    of brackets) are read from the text of the last ``user`` message (none once a ``tool`` message
    follows it: the answer to a tool result is text); headers
    ``x-mock-<name>`` (dashes or underscores, e.g. ``x-mock-delay-ms: 200``) override
    them. Raises :class:`MockRequestError` for an unknown name or a bad value.
    """
    settings: dict[str, int] = {}
    text = _last_user_text(body)
    if "[mock" in text:
        for directive in _DIRECTIVE.finditer(text):
            for name, value in _SETTING.findall(directive.group(1)):
                _setting(name, value, settings)
    for key, value in headers:
        lowered = key.lower()
        if lowered.startswith(_HEADER_PREFIX):
            _setting(lowered[len(_HEADER_PREFIX) :].replace("-", "_"), value.strip(), settings)
    if not settings:
        return NO_CONTROLS
    status = settings.get("status")
    if status is not None and not 400 <= status <= 599:
        raise MockRequestError(f"mock control 'status' must be an HTTP error status (400-599), got {status}")
    return Controls(
        status=status,
        retry_after=settings.get("retry_after", 1),
        delay_ms=settings.get("delay_ms", 0),
        first_byte_delay_ms=settings.get("first_byte_delay_ms", 0),
        chunk_delay_ms=settings.get("chunk_delay_ms", 0),
        reply_tokens=settings.get("reply_tokens"),
        cached=settings.get("cached", 0),
        cache_write=settings.get("cache_write", 0),
        drop_after=settings.get("drop_after"),
        hang=bool(settings.get("hang", 0)),
        bad_json=bool(settings.get("bad_json", 0)),
        no_usage=bool(settings.get("no_usage", 0)),
        spaced_json=bool(settings.get("spaced_json", 0)),
        gzip=bool(settings.get("gzip", 0)),
        junk_stream=bool(settings.get("junk_stream", 0)),
        tool_calls=settings.get("tool_calls", 0),
        reasoning=settings.get("reasoning", 0),
        thinking_tokens=settings.get("thinking_tokens"),
        web_searches=settings.get("web_searches", 0),
    )


def plan_reply(
    body: Mapping[str, Any],
    controls: Controls,
    *,
    max_tokens: Any,
    response_id: str,
    created: int,
    hidden_input_tokens: int = 0,
) -> Reply:
    """Plan the answer to a valid request; ``max_tokens`` is the body's output limit or ``None``;
    ``hidden_input_tokens`` is input the provider bills beyond the words (see :mod:`.hidden_billing`)."""
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0
    ):
        raise MockRequestError("max_tokens must be a non-negative integer")
    wanted = DEFAULT_REPLY_TOKENS if controls.reply_tokens is None else controls.reply_tokens
    output = wanted if max_tokens is None else min(wanted, max_tokens)
    tools = _tool_names(body)
    if controls.tool_calls and not tools:
        raise MockRequestError("mock control 'tool_calls' needs a request with tools")
    calls = tuple(MockToolCall(i, tools[i % len(tools)]) for i in range(controls.tool_calls))
    named = _named_call(body, tools)
    if named is not None:
        calls = (named,)
    thinking = body.get("thinking")
    thinks = isinstance(thinking, Mapping) and thinking.get("type") in ("enabled", "adaptive")
    thinking_tokens = 0
    if thinks:
        thinking_tokens = (
            DEFAULT_THINKING_TOKENS if controls.thinking_tokens is None else controls.thinking_tokens
        )
    return Reply(
        response_id=response_id,
        created=created,
        model=str(body["model"]),
        input_tokens=count_input_tokens(body) + hidden_input_tokens,
        output_tokens=output,
        cache_read_tokens=controls.cached,
        cache_write_tokens=controls.cache_write,
        truncated=output < wanted,
        no_usage=controls.no_usage,
        tool_calls=calls,
        reasoning_tokens=controls.reasoning,
        thinking_tokens=thinking_tokens,
        web_searches=controls.web_searches,
    )


def _named_call(body: Mapping[str, Any], tools: list[str]) -> MockToolCall | None:
    """The call a ``[mock-tool NAME key="value" …]`` directive of the last user text asks for, when the
    request offers that tool (other requests, e.g. a title summary without tools, get plain text)."""
    text = _last_user_text(body)
    if "[mock-tool" not in text:
        return None
    match = _TOOL_DIRECTIVE.search(text)
    if match is None or match.group(1) not in tools:
        return None
    return MockToolCall(0, match.group(1), tuple(_TOOL_ARGUMENT.findall(match.group(2))))


def _tool_names(body: Mapping[str, Any]) -> list[str]:
    """The names of the request's tools, in either format (OpenAI ``function.name``, Anthropic ``name``)."""
    names = []
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, Mapping):
            function = tool.get("function")
            name = function.get("name") if isinstance(function, Mapping) else tool.get("name")
            if isinstance(name, str):
                names.append(name)
    return names
