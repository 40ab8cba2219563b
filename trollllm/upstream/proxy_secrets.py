"""Proxy URLs with their credentials, sealed: AES-256-GCM in `proxies.url_encrypted`, masked in `url`.

Rows written before migration 0008 hold the whole URL in `url`; `seal_proxy_urls` (at start-up, and by
`trollllm rotate-secret`) encrypts them and keeps only the masked form in plaintext.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.crypto import KeyBox
from trollllm.db import transaction
from trollllm.upstream.tables import Proxy

logger = logging.getLogger("trollllm.upstream")

HIDDEN = "****"


def proxy_url_context(proxy_id: int) -> str:
    """The associated data of a proxy's sealed URL."""
    return f"proxy_url:{proxy_id}"


def mask_proxy_url(url: str) -> str:
    """The proxy URL with any password replaced by `****` (`user:****@host:port`)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{HIDDEN}@{hostport}"))


def seal(row: Proxy, url: str, keybox: KeyBox) -> None:
    """Keep `url` encrypted on `row` (which has its id) and only its masked form in plaintext."""
    row.url_encrypted = keybox.encrypt(url, proxy_url_context(row.id))
    row.url = mask_proxy_url(url)


def proxy_url_of(proxy_id: int, url: str, url_encrypted: bytes | None, keybox: KeyBox) -> str:
    """The whole URL of a proxy row; `ValueError` when its sealed URL does not decrypt."""
    if url_encrypted is None:
        return url  # not sealed yet (written before migration 0008)
    return keybox.decrypt(bytes(url_encrypted), proxy_url_context(proxy_id))


async def seal_proxy_urls(sessions: async_sessionmaker[AsyncSession], keybox: KeyBox) -> int:
    """Encrypt every proxy URL still in plaintext; how many were sealed."""
    async with transaction(sessions) as session:
        rows = list(
            await session.scalars(select(Proxy).where(Proxy.url_encrypted.is_(None)).with_for_update())
        )
        for row in rows:
            seal(row, row.url, keybox)
    if rows:
        logger.warning("sealed %d proxy URLs that were stored in plaintext", len(rows))
    return len(rows)
