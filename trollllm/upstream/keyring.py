"""The pool's in-memory view of the factory keys: loading them, the base URL rule, per-key headers.

Decrypted keys live only in `PoolKey.secret`, in memory; they are never logged, never put in an
exception message and never written anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm import __version__
from trollllm.crypto import KeyBox, mask_secrets
from trollllm.providers.tables import Provider
from trollllm.upstream.proxy_secrets import proxy_url_of
from trollllm.upstream.tables import FactoryKey, Proxy

logger = logging.getLogger("trollllm.upstream")

ANTHROPIC_DEFAULT_VERSION = "2023-06-01"
DEFAULT_COOLDOWN_S = 30.0
MAX_COOLDOWN_S = 300.0
SOCKS_UNSUPPORTED = "socks5 proxies are not supported"
UNDECRYPTABLE = "the stored key cannot be decrypted with this server secret"
_SUPPORTED_PROXY_SCHEMES = frozenset({"http", "https"})
_LAST_ERROR_MAX_CHARS = 500


def split_base_url(base_url: str) -> tuple[str, bool]:
    """`(root, names_api_root)`: the base URL without trailing slashes, and whether it has a path.

    The base URL rule: a bare origin (`https://api.openai.com`, `https://api.anthropic.com`,
    `http://127.0.0.1:8000`) gets the request path as is (`/v1/chat/completions`); a base URL with a path
    is the API root the way the OpenAI SDK takes it (`https://api.openai.com/v1`,
    `https://api.groq.com/openai/v1`, `https://generativelanguage.googleapis.com/v1beta/openai`), so the
    request path's leading `/v1` is replaced by it.
    """
    root = base_url.rstrip("/")
    return root, bool(urlsplit(root).path)


def upstream_url(base_url: str, path: str) -> str:
    """The URL a request for `path` (like `/v1/messages`) goes to under `base_url` (see `split_base_url`)."""
    root, names_api_root = split_base_url(base_url)
    return join_url(root, names_api_root, path)


def join_url(root: str, names_api_root: bool, path: str) -> str:
    """`root` + `path`, dropping the path's `/v1` when `root` already names the API root."""
    if names_api_root and path.startswith("/v1/"):
        return root + path[3:]
    return root + path


def scrub(text: str, secret: str) -> str:
    """`text` with the secret (and anything key-shaped) masked and its length bounded, for `last_error`."""
    if secret:
        text = text.replace(secret, f"****{secret[-4:]}")
    return mask_secrets(text)[:_LAST_ERROR_MAX_CHARS]


@dataclass(slots=True, eq=False)
class PoolKey:
    """One usable factory key as the pool holds it (decrypted secret in memory only)."""

    id: int
    provider: str
    wire_format: str
    """What the provider's API speaks (`openai` or `anthropic`, from its row): decides the auth headers."""
    root: str
    names_api_root: bool
    secret: str = field(repr=False)
    proxy: str | None = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    proxy_id: int | None = None
    proxy_answers: bool = False
    """Requests go to the proxy in absolute form (http:// provider): the proxy itself may answer them."""
    cooling_until: float = 0.0
    """Monotonic time (of the pool's clock) until which the key is not used; 0 if it is not cooling."""
    db_cooling: bool = False
    """The database still says `cooling_down`: the first success writes `healthy` back."""
    disabled: bool = False

    def url(self, path: str) -> str:
        """The upstream URL for a request path like `/v1/chat/completions`."""
        return join_url(self.root, self.names_api_root, path)


@dataclass(slots=True)
class LoadedKeys:
    """What one load found: the usable keys by provider, and keys to flag with a `last_error`."""

    by_provider: dict[str, list[PoolKey]]
    flagged: dict[int, str]
    proxy_errors: set[int] = field(default_factory=set)
    """Proxies whose row holds a `last_error` (cleared by the next request that passes through)."""


def auth_headers(wire_format: str, secret: str) -> dict[str, str]:
    """The fixed headers of every request sent with a key to an API of `wire_format`."""
    headers = {
        "content-type": "application/json",
        "accept-encoding": "identity",
        "user-agent": f"trollllm/{__version__}",
    }
    if wire_format == "anthropic":
        headers["x-api-key"] = secret
    else:
        headers["authorization"] = f"Bearer {secret}"
    return headers


def passthrough_headers(wire_format: str, headers: Mapping[str, str]) -> dict[str, str] | None:
    """The client headers forwarded upstream to an API of `wire_format`: for the Anthropic format its
    version (default `2023-06-01`) and beta flags; nothing for the OpenAI format."""
    if wire_format != "anthropic":
        return None
    extra = {"anthropic-version": headers.get("anthropic-version") or ANTHROPIC_DEFAULT_VERSION}
    beta = headers.get("anthropic-beta")
    if beta:
        extra["anthropic-beta"] = beta
    return extra


def retry_after_s(value: str | None, now: datetime) -> float:
    """A cooldown from an upstream `Retry-After` (seconds or HTTP date), kept within 1 s and
    `MAX_COOLDOWN_S`; `DEFAULT_COOLDOWN_S` when absent or unreadable."""
    if not value:
        return DEFAULT_COOLDOWN_S
    value = value.strip()
    try:
        if value.replace(".", "", 1).isdigit():
            seconds = float(value)
        else:
            seconds = (parsedate_to_datetime(value) - now).total_seconds()
    except (TypeError, ValueError, OverflowError):
        return DEFAULT_COOLDOWN_S
    return min(max(seconds, 1.0), MAX_COOLDOWN_S)


def factory_key_context(key_id: int) -> str:
    """The AES-GCM associated data of a factory key (as `trollllm.upstream.service` encrypts it)."""
    return f"factory_key:{key_id}"


async def load_keys(
    sessions: async_sessionmaker[AsyncSession], keybox: KeyBox, *, now: datetime, monotonic: float
) -> LoadedKeys:
    """Every factory key that is not disabled, decrypted, grouped by provider and ordered by id, each with
    its provider row's wire format.

    A key bound to a socks5 proxy, or one that does not decrypt, is left out and flagged with the reason
    (when its `last_error` does not say so already).
    """
    async with sessions() as session:
        rows = (
            await session.execute(
                select(FactoryKey, Provider.wire_format, Proxy.url, Proxy.url_encrypted, Proxy.last_error)
                .join(Provider, Provider.name == FactoryKey.provider)
                .outerjoin(Proxy, FactoryKey.proxy_id == Proxy.id)
                .where(FactoryKey.status != "disabled")
                .order_by(FactoryKey.id)
            )
        ).all()
    loaded = LoadedKeys(by_provider={}, flagged={})
    for row, wire_format, proxy_url, proxy_sealed, proxy_error in rows:
        if proxy_error is not None and row.proxy_id is not None:
            loaded.proxy_errors.add(row.proxy_id)
        problem = None
        if proxy_url is not None and urlsplit(proxy_url).scheme not in _SUPPORTED_PROXY_SCHEMES:
            problem = SOCKS_UNSUPPORTED
        else:
            try:
                secret = keybox.decrypt(row.key_encrypted, factory_key_context(row.id))
                if proxy_url is not None and row.proxy_id is not None:
                    proxy_url = proxy_url_of(row.proxy_id, proxy_url, proxy_sealed, keybox)
            except ValueError:
                problem = UNDECRYPTABLE
        if problem is not None:
            logger.error("factory key %d left out of rotation: %s", row.id, problem)
            if row.last_error != problem:
                loaded.flagged[row.id] = problem
            continue
        cooling_until = 0.0
        if row.status == "cooling_down" and row.cooldown_until is not None and row.cooldown_until > now:
            cooling_until = monotonic + (row.cooldown_until - now).total_seconds()
        root, names_api_root = split_base_url(row.base_url)
        loaded.by_provider.setdefault(row.provider, []).append(
            PoolKey(
                id=row.id,
                provider=row.provider,
                wire_format=wire_format,
                root=root,
                names_api_root=names_api_root,
                secret=secret,
                proxy=proxy_url,
                headers=auth_headers(wire_format, secret),
                cooling_until=cooling_until,
                db_cooling=row.status == "cooling_down",
                proxy_id=row.proxy_id,
                proxy_answers=proxy_url is not None and root.lower().startswith("http://"),
            )
        )
    return loaded
