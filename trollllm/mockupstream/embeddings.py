"""The OpenAI embeddings endpoint (``POST /v1/embeddings``), as the mock upstream answers it.

Usage is deterministic: ``prompt_tokens`` is the number of whitespace-separated words of every input
(a token array counts its tokens). Each vector has :data:`DIMENSIONS` floats derived from its text;
``encoding_format: "base64"`` (what the official SDK asks for) gives them as little-endian float32.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

import orjson

from trollllm.mockupstream.controls import MockRequestError

DIMENSIONS = 8


def embedding_tokens(value: Any) -> int:
    """The tokens the mock bills for one embeddings input (a string or a token array)."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return len(value)
    raise MockRequestError("each input must be a string or an array of tokens")


def _vector(value: Any) -> list[float]:
    digest = hashlib.sha256(orjson.dumps(value)).digest()
    return [(byte - 128) / 128 for byte in digest[:DIMENSIONS]]


def embeddings_reply(body: Any) -> bytes:
    """The embeddings list for a request body (``MockRequestError`` when it is not one)."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise MockRequestError("you must provide a model parameter")
    raw = body.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw)):
        inputs: list[Any] = [raw]
    elif isinstance(raw, list) and raw:
        inputs = raw
    else:
        raise MockRequestError("'input' must be a string or a non-empty array")
    tokens = sum(embedding_tokens(value) for value in inputs)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, value in enumerate(inputs):
        vector = _vector(value)
        embedding: Any = vector
        if as_base64:
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps({"object": "list", "data": data, "model": body["model"], "usage": usage})
