"""Anthropic thinking blocks carried through a client inside a reasoning item's `encrypted_content`.

Anthropic accepts a thinking block back only with its signature, and the text it signed; the client gets
both sealed (encrypted and authenticated with the server key), so it can neither read the signature nor
alter the thinking, and any instance of the gateway can open it on the next turn. Our sealed values carry
a prefix: a reasoning item from another provider (OpenAI's own encrypted reasoning) is recognised as
foreign rather than as tampered with.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from trollllm.errors import InvalidRequest

SEALED_PREFIX = "tlm1."
"""Starts every `encrypted_content` this gateway sealed."""


class Sealer(Protocol):
    """Authenticated encryption with the server key (AES-GCM in the gateway)."""

    def seal(self, plaintext: bytes) -> str:
        """`plaintext` encrypted and authenticated, as text."""
        ...

    def unseal(self, sealed: str) -> bytes:
        """The plaintext of `seal`'s output; raises `ValueError` when it was altered or is not ours."""
        ...


def seal_thinking(sealer: Sealer, blocks: list[dict[str, Any]]) -> str:
    """The `encrypted_content` for Anthropic thinking blocks (`thinking` or `redacted_thinking`)."""
    return SEALED_PREFIX + sealer.seal(orjson.dumps(blocks))


def unseal_thinking(sealer: Sealer, encrypted: str, field: str) -> list[dict[str, Any]] | None:
    """The thinking blocks sealed in `encrypted`; None when another provider sealed it; 400 naming
    `field` when it was altered."""
    if not encrypted.startswith(SEALED_PREFIX):
        return None
    try:
        blocks = orjson.loads(sealer.unseal(encrypted[len(SEALED_PREFIX) :]))
    except ValueError as exc:  # altered, sealed with another key, or not JSON (orjson's error is one too)
        raise InvalidRequest(
            f"`{field}` was altered or sealed by another server; pass reasoning items back unchanged",
            field=field,
        ) from exc
    if not isinstance(blocks, list) or not all(
        isinstance(block, dict) and block.get("type") in ("thinking", "redacted_thinking") for block in blocks
    ):
        raise InvalidRequest(f"`{field}` does not hold reasoning", field=field)
    return blocks
