"""A mock upstream LLM provider (OpenAI and Anthropic wire formats) on a real loopback server.

Used by the gateway's demo mode, the test suite and the latency benchmark; importing it
starts nothing. See :class:`MockUpstream` and, for the per-request ``[mock ...]``
directives, :func:`parse_controls`.
"""

from trollllm.mockupstream.controls import (
    DEFAULT_REPLY_TOKENS,
    MESSAGE_OVERHEAD_TOKENS,
    TOOL_CALL_TOKENS,
    Controls,
    MockRequestError,
    count_input_tokens,
    parse_controls,
    reply_pieces,
    reply_text,
)
from trollllm.mockupstream.recording import RecordedRequest
from trollllm.mockupstream.server import DEFAULT_MODELS, MockUpstream

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_REPLY_TOKENS",
    "MESSAGE_OVERHEAD_TOKENS",
    "TOOL_CALL_TOKENS",
    "Controls",
    "MockRequestError",
    "MockUpstream",
    "RecordedRequest",
    "count_input_tokens",
    "parse_controls",
    "reply_pieces",
    "reply_text",
]
