"""Sealing what a provider gives the client to send back untouched, but must not let it read or forge: an
Anthropic thinking block's signature travels inside a reasoning item's `encrypted_content`, sealed with
the server key (AES-256-GCM, `trollllm.crypto.KeyBox`), and is opened again on the next turn by any
instance (the `Sealer` of `trollllm.responses.translate.sealing`)."""

from __future__ import annotations

import base64

from trollllm.crypto import KeyBox

_CONTEXT = "responses:reasoning"


class ReasoningSealer:
    """Seals and opens reasoning payloads with the server key."""

    def __init__(self, keybox: KeyBox) -> None:
        self._keybox = keybox

    def seal(self, plaintext: bytes) -> str:
        """`plaintext` (UTF-8 JSON) encrypted and authenticated, as URL-safe base64 text."""
        return base64.urlsafe_b64encode(self._keybox.encrypt(plaintext.decode(), _CONTEXT)).decode()

    def unseal(self, sealed: str) -> bytes:
        """The plaintext of `seal`; `ValueError` when it was altered or sealed with another server key."""
        blob = base64.urlsafe_b64decode(sealed.encode())  # binascii.Error is a ValueError
        return self._keybox.decrypt(blob, _CONTEXT).encode()
