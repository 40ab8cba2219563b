"""Sealing what a provider gives the client to send back untouched, but must not let it forge: an
Anthropic thinking block's signature travels inside a reasoning item's `encrypted_content`, sealed with
the server key (AES-256-GCM, `trollllm.crypto.KeyBox`), and is opened again on the next turn."""

from __future__ import annotations

import base64
import binascii

from trollllm.crypto import KeyBox

_CONTEXT = "responses:reasoning"
_PREFIX = "trollllm:"


class ReasoningSealer:
    """Seals and opens reasoning payloads with the server key."""

    def __init__(self, keybox: KeyBox) -> None:
        self._keybox = keybox

    def seal(self, payload: str) -> str:
        """`payload` encrypted and authenticated, as text for `encrypted_content`."""
        blob = self._keybox.encrypt(payload, _CONTEXT)
        return _PREFIX + base64.b64encode(blob).decode()

    def unseal(self, sealed: str) -> str | None:
        """The payload of a sealed text; None when it is not one this server sealed (or was altered)."""
        if not sealed.startswith(_PREFIX):
            return None
        try:
            blob = base64.b64decode(sealed[len(_PREFIX) :], validate=True)
            return self._keybox.decrypt(blob, _CONTEXT)
        except (binascii.Error, ValueError):
            return None
