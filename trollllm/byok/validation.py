"""The check of a provider key on save: one cheap call, `GET {API root}/models`, with the key.

2xx: `verified`; 401 or 403: `invalid` (the provider refused it); anything else (unreachable, a timeout, a
5xx, a provider without that endpoint): `unverified`, the key is saved all the same. Off the hot path, so
a plain httpx client; the key goes only in the request's auth header, never in a log or an error.
"""

from __future__ import annotations

import logging

from trollllm.byok.tables import INVALID, UNVERIFIED, VERIFIED
from trollllm.upstream.keyring import ANTHROPIC_DEFAULT_VERSION, auth_headers, upstream_url

logger = logging.getLogger("trollllm.byok")


async def check_provider_key(base_url: str, wire_format: str, api_key: str, timeout_s: float) -> str:
    """What the provider says of `api_key`: `verified`, `invalid` or `unverified` (see the module doc)."""
    import httpx  # here, not at import: only this check needs it (~5 MB with its CLI's imports)

    headers = auth_headers(wire_format, api_key)
    if wire_format == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_DEFAULT_VERSION
    try:
        async with httpx.AsyncClient(timeout=timeout_s, trust_env=False, follow_redirects=False) as client:
            response = await client.get(upstream_url(base_url, "/v1/models"), headers=headers)
    except httpx.HTTPError as exc:
        logger.info("provider key check could not reach the provider: %s", type(exc).__name__)
        return UNVERIFIED
    if 200 <= response.status_code < 300:
        return VERIFIED
    if response.status_code in (401, 403):
        return INVALID
    return UNVERIFIED
