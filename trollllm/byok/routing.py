"""Requests on the caller's own provider key (BYOK, SPEC §1, §5): which key, how it goes upstream, and
what the provider's 401 to it does.

The gate asks `own_key_for` only when the key lookup said the user has provider keys at all (an EXISTS in
that same query), so a user without any costs no extra round trip. The key goes to the provider row's
API root in its wire format, never through the factory keys' rotation: a refusal marks the user's key
`invalid` (shown on the settings page and by `GET /api/user/provider-keys`) and touches no factory key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from trollllm.byok.service import key_context
from trollllm.byok.tables import INVALID, VERIFIED
from trollllm.errors import ProviderKeyRejected, ServiceUnavailable
from trollllm.state import AppState
from trollllm.storage.sqlprogram import Program, Query
from trollllm.upstream.keyring import PoolKey, auth_headers, split_base_url
from trollllm.upstream.reply import UpstreamReply

logger = logging.getLogger("trollllm.byok")

OWN_KEY_POOL_ID = 0
"""The pool key id of an own key: no factory key has it, so nothing done to "the key" of a reply (cooling
an unusable stream's key, counting requests) can reach a factory key."""

_OWN_KEY = (
    "SELECT k.id, k.key_encrypted, k.last4, k.status, p.wire_format, p.base_url FROM provider_keys k "
    "JOIN providers p ON p.name = k.provider WHERE k.user_id = :user_id AND k.provider = :provider"
)
# Only the blob that was used: a key replaced meanwhile keeps its own status.
_SET_STATUS = (
    "UPDATE provider_keys SET status = :status, status_at = :now WHERE id = :key_id AND key_encrypted = :blob"
)


@dataclass(frozen=True, slots=True, eq=False)
class OwnKey:
    """The caller's own key for one provider, decrypted in memory only, ready to send with."""

    id: int
    provider: str
    last4: str
    status: str
    blob: bytes = field(repr=False)
    upstream: PoolKey = field(repr=False)

    @property
    def masked(self) -> str:
        """The key as an error message may name it: its last 4 only."""
        return f"****...****{self.last4}"


def _own_key_row(user_id: int, provider: str) -> Program[tuple[Any, ...] | None]:
    rows = yield Query(_OWN_KEY, {"user_id": user_id, "provider": provider})
    return tuple(rows[0]) if rows else None


def _set_status(key_id: int, blob: bytes, status: str, now: datetime) -> Program[None]:
    yield Query(_SET_STATUS, {"status": status, "now": now, "key_id": key_id, "blob": blob})


async def own_key_for(state: AppState, user_id: int, provider: str) -> OwnKey | None:
    """The user's saved key for `provider`, decrypted; None when they saved none for it.

    A key that no longer decrypts (the server secret changed without `trollllm rotate-secret`) is a 503
    asking to save it again: the request is not silently charged to the platform instead.
    """
    row = await state.db.read(_own_key_row(user_id, provider))
    if row is None:
        return None
    key_id, blob, last4, status, wire_format, base_url = row
    blob = bytes(blob)
    try:
        secret = state.keybox.decrypt(blob, key_context(user_id, provider))
    except ValueError:
        logger.error("own provider key %s cannot be decrypted with this server secret", key_id)
        raise ServiceUnavailable(
            f"Your saved {provider} key cannot be read by the gateway; save it again at "
            "/dashboard/settings/api-keys"
        ) from None
    root, names_api_root = split_base_url(str(base_url))
    upstream = PoolKey(
        id=OWN_KEY_POOL_ID,
        provider=provider,
        wire_format=str(wire_format),
        root=root,
        names_api_root=names_api_root,
        secret=secret,
        proxy=None,
        headers=auth_headers(str(wire_format), secret),
    )
    return OwnKey(int(key_id), provider, str(last4), str(status), blob, upstream)


async def send_upstream(
    state: AppState,
    own_key: OwnKey | None,
    provider: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    stream: bool,
    prefer: int | None = None,
) -> UpstreamReply:
    """Send the request: with the caller's own key when there is one, else through the factory keys.

    The provider's 401 to an own key is `ProviderKeyRejected` naming the key by its last 4 (its body is
    not relayed: it may quote the key); the key is marked `invalid`. Its first success marks it `verified`.
    `prefer`: the factory key to try first while it is healthy (the one that served the conversation).
    """
    if own_key is None:
        return await state.upstream.send(provider, path, body, headers, stream=stream, prefer=prefer)
    reply = await state.upstream.send_direct(own_key.upstream, path, body, headers, stream=stream)
    if reply.status == 401:
        reply.release()
        await _record_status(state, own_key, INVALID)
        logger.warning("the provider refused an own provider key", extra={"provider": own_key.provider})
        raise ProviderKeyRejected(
            f"The {own_key.provider} API refused your own {own_key.provider} key {own_key.masked} (401): "
            "it is marked invalid. Replace or delete it at /dashboard/settings/api-keys.",
            provider=own_key.provider,
            keyLast4=own_key.last4,
        )
    if reply.status < 400 and own_key.status != VERIFIED:
        await _record_status(state, own_key, VERIFIED)
    return reply


async def _record_status(state: AppState, own_key: OwnKey, status: str) -> None:
    """Write what the provider said of the key; a failed write only loses the status, not the request."""
    try:
        await state.db.write(_set_status(own_key.id, own_key.blob, status, state.clock.now()))
    except Exception:
        logger.exception("could not record the status of an own provider key")
