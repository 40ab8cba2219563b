"""A prompt cache per upstream API key, as a provider keeps one per account (opt-in: ``prompt_cache``).

A request whose leading messages (with its system prompt and model) are those of an earlier request
sent with the same key gets them as cache hits: their tokens move from input to cached. Every prefix of
every request is remembered, so a conversation sent turn after turn on one key hits its cache on every
turn after the first, and on another key it does not.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from trollllm.mockupstream.controls import Reply, count_input_tokens


class PromptCache:
    """The cached prefixes of each API key."""

    def __init__(self) -> None:
        self._prefixes: dict[str, set[bytes]] = {}

    def apply(self, api_key: str, view: Mapping[str, Any], reply: Reply) -> Reply:
        """``reply`` with the cached part of ``view``'s input as cache hits; remembers its prefixes."""
        messages = view.get("messages")
        if not isinstance(messages, list) or not messages:
            return reply
        seen = self._prefixes.setdefault(api_key, set())
        head = orjson.dumps([view.get("model"), view.get("system")])
        digests = []
        digest = hashlib.sha256(head)
        for message in messages:
            digest.update(orjson.dumps(message, option=orjson.OPT_SORT_KEYS))
            digests.append(digest.copy().digest())
        cached_messages = 0
        for length in range(len(messages) - 1, 0, -1):
            if digests[length - 1] in seen:
                cached_messages = length
                break
        seen.update(digests)
        if not cached_messages:
            return reply
        cached = count_input_tokens({"system": view.get("system"), "messages": messages[:cached_messages]})
        cached = min(cached, reply.input_tokens)
        return dataclasses.replace(
            reply,
            input_tokens=reply.input_tokens - cached,
            cache_read_tokens=reply.cache_read_tokens + cached,
        )
