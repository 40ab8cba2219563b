"""Redemption code text: made from a CSPRNG, checked for shape before any lookup, stored as a digest.

A code is `TRL-` and four groups of 7 Crockford base-32 symbols (28 × 5 = 140 bits of entropy), e.g.
`TRL-7K2QH9M-0XBW4RT-N8D3FZA-C6PJ1EV`. Users may type it in any case, with spaces around it.
"""

from __future__ import annotations

import hashlib
import re
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
GROUPS, GROUP_LENGTH = 4, 7
CODE_BITS = GROUPS * GROUP_LENGTH * 5
_SHAPE = re.compile(rf"TRL(-[{ALPHABET}]{{{GROUP_LENGTH}}}){{{GROUPS}}}")


def new_code() -> str:
    """A fresh code from the operating system's CSPRNG."""
    groups = ("".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS))
    return "TRL-" + "-".join(groups)


def normalize(text: str) -> str | None:
    """The code in canonical form, or None when `text` cannot be a code (no lookup is worth making)."""
    candidate = text.strip().upper()
    return candidate if _SHAPE.fullmatch(candidate) else None


def code_digest(code: str) -> bytes:
    """What is stored: SHA-256 of the canonical text. Codes carry 140 random bits, so no salt is needed."""
    return hashlib.sha256(code.encode()).digest()
