"""Secrets handling: password hashing, key digests, AES-256-GCM encryption, key formats and masking.

Every derived key comes from the one server secret through HKDF with its own purpose label, so the JWT
key, the encryption key and the digest key are independent.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from functools import cached_property

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

USER_KEY_PREFIX = "sk-trollllm-"
FRIEND_KEY_PREFIX = "sk-trollllm-friend-"
USER_KEY_PATTERN = re.compile(r"sk-trollllm-[0-9a-f]{64}")
FRIEND_KEY_PATTERN = re.compile(r"sk-trollllm-friend-[0-9a-f]{64}")
# Anything that looks like a key, for masking in logs and error bodies: ours and OpenAI's or Anthropic's
# (`sk-…`, `sk-ant-…`), Groq's (`gsk_…`), xAI's (`xai-…`), Google's (`AIza…`).
ANY_KEY_PATTERN = re.compile(r"(sk-|gsk_|xai-|AIza)([A-Za-z0-9_\-]{8,})")
# Any other bearer token (a provider's key of a shape not listed above).
_BEARER_PATTERN = re.compile(r"(Bearer\s+)([A-Za-z0-9._~+/\-]{12,}=*)")
_NONCE_BYTES = 12
_VERSION = b"\x01"
_KEY_ID_BYTES = 8
_HEADER = 1 + _KEY_ID_BYTES


def key_id_of(secret: bytes) -> bytes:
    """The 8-byte id of a server secret, stored in front of each blob it encrypts (reveals nothing of it)."""
    return derive_key(secret, "trollllm/key-id/v1")[:_KEY_ID_BYTES]


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose, derived from the server secret."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(secret)


class Passwords:
    """argon2id at the OWASP minimum (19 MiB, 2 passes, 1 lane): safe and ~20 ms, not the slow default."""

    def __init__(self) -> None:
        self._hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)

    @cached_property
    def _dummy_hash(self) -> str:
        """Verified against when a username is unknown, so timing does not reveal which usernames exist.
        Made at the first check, not at start-up (19 MiB and ~20 ms a serving process may never need)."""
        return self._hasher.hash(secrets.token_hex(16))

    def hash(self, password: str) -> str:
        """The argon2id hash of a password."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True if the password matches; a None hash still costs one verification."""
        dummy = self._dummy_hash  # made at the first check whatever its user: that one is slower for both
        try:
            return self._hasher.verify(password_hash or dummy, password) and bool(password_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


class KeyBox:
    """AES-256-GCM encryption of stored secrets (user key copies for reveal, BYOK and factory keys).

    A blob is `0x01 ‖ key id (8 bytes) ‖ nonce (12) ‖ ciphertext+tag`: the key id names the server secret
    that encrypted it, so after a secret rotation the old secret's blobs are recognised (and re-encrypted
    by `trollllm rotate-secret`) rather than failing as tampered. Blobs written before key ids were
    `nonce ‖ ciphertext+tag` and still decrypt.
    """

    def __init__(
        self, secret: bytes, *, previous: tuple[bytes, ...] = (), digest_key: bytes | None = None
    ) -> None:
        self._aead = AESGCM(derive_key(secret, "trollllm/aes-gcm/v1"))
        self.key_id = key_id_of(secret)
        self._by_id = {key_id_of(old): AESGCM(derive_key(old, "trollllm/aes-gcm/v1")) for old in previous}
        self._by_id[self.key_id] = self._aead
        # The lookup index of gateway keys outlives a secret rotation (Friend Keys keep only a digest, so
        # it could not be recomputed): after one, it is the key `trollllm rotate-secret` carried forward.
        self._digest_key = digest_key or derive_key(secret, "trollllm/key-digest/v1")

    def encrypt(self, plaintext: str, context: str) -> bytes:
        """A new blob under the current secret, with a fresh random nonce; `context` is bound as associated
        data (a ciphertext moved to another row or purpose does not decrypt)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return _VERSION + self.key_id + nonce + sealed

    def decrypt(self, blob: bytes, context: str) -> str:
        """The plaintext of `encrypt`; raises `ValueError` if tampered with or under an unknown secret."""
        try:
            if blob[:1] == _VERSION and blob[1:_HEADER] in self._by_id:
                aead, body = self._by_id[blob[1:_HEADER]], blob[_HEADER:]
            else:
                aead, body = self._aead, blob  # written before key ids
            return aead.decrypt(body[:_NONCE_BYTES], body[_NONCE_BYTES:], context.encode()).decode()
        except InvalidTag as exc:
            raise ValueError("stored key cannot be decrypted with this server secret") from exc

    def is_current(self, blob: bytes) -> bool:
        """Whether `blob` was encrypted under the current secret with a key id (nothing to re-encrypt)."""
        return blob[:1] == _VERSION and blob[1:_HEADER] == self.key_id

    @property
    def digest_key(self) -> bytes:
        """The HMAC key of `digest` (carried forward, encrypted, by a secret rotation)."""
        return self._digest_key

    def digest(self, key: str) -> bytes:
        """HMAC-SHA256 of a gateway key, the lookup index (a leaked table cannot confirm guesses offline)."""
        return hmac.digest(self._digest_key, key.encode(), "sha256")


def new_user_key() -> str:
    """A fresh user API key: `sk-trollllm-` + 64 lowercase hex (32 bytes from the OS CSPRNG)."""
    return USER_KEY_PREFIX + secrets.token_hex(32)


def new_friend_key() -> str:
    """A fresh Friend Key: `sk-trollllm-friend-` + 64 lowercase hex."""
    return FRIEND_KEY_PREFIX + secrets.token_hex(32)


def mask_key(last4: str) -> str:
    """The one masked form of any key: `sk-trollllm-****...****` + last 4."""
    return f"{USER_KEY_PREFIX}****...****{last4}"


def mask_friend_key(last4: str) -> str:
    """A Friend Key as its owner's page shows it, `sk-trollllm-friend-****...****` + last 4, so it is never
    taken for the API key (the API answers the one masked form of `mask_key`, SPEC §3)."""
    return f"{FRIEND_KEY_PREFIX}****...****{last4}"


def mask_secrets(text: str) -> str:
    """Replace anything key-shaped in free text (log lines, upstream error bodies) by its masked form."""
    masked = _BEARER_PATTERN.sub(lambda match: f"{match.group(1)}****...****{match.group(2)[-4:]}", text)
    return ANY_KEY_PATTERN.sub(_masked_key, masked)


def _masked_key(match: re.Match[str]) -> str:
    prefix, body = match.group(1), match.group(2)
    if prefix == "sk-":
        return mask_key(body[-4:])
    return f"{prefix}****...****{body[-4:]}"
