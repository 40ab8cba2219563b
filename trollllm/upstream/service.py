"""Factory keys and outbound proxies: validated, audited writes for the admin API, and the decrypt the
proxy uses.

Writes run in the caller's transaction and only flush; the route owns the commit, so a row and its audit
entry commit (or roll back) together. A factory key's plaintext is encrypted with AES-256-GCM bound to its
row (`factory_key:{id}`), so a ciphertext copied onto another row does not decrypt; it appears in no view,
no audit entry and no error message.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.audit.service import record_audit
from trollllm.errors import Conflict, InvalidRequest, NotFound
from trollllm.providers.known import require_provider
from trollllm.state import AppState
from trollllm.upstream.proxy_secrets import mask_proxy_url, seal
from trollllm.upstream.schemas import (
    BoundKey,
    FactoryKeyPatch,
    FactoryKeyView,
    NewFactoryKey,
    NewProxy,
    ProxyView,
)
from trollllm.upstream.tables import FactoryKey, Proxy

BASE_URL_SCHEMES = frozenset({"http", "https"})
PROXY_URL_SCHEMES = frozenset({"http", "https", "socks5", "socks5h"})


# --- URLs ------------------------------------------------------------------------------------------


def _split_url(value: str, field: str, schemes: frozenset[str]) -> SplitResult:
    """Parse a URL with one of `schemes` and a host, or raise a 400 naming `field`."""
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise InvalidRequest(f"{field} must not contain spaces or control characters", field=field)
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a port that is not a number in 0..65535
    except ValueError as exc:
        raise InvalidRequest(f"{field} is not a valid URL", field=field) from exc
    if parts.scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        raise InvalidRequest(f"{field} must be a URL with scheme {allowed}", field=field)
    if not parts.hostname:
        raise InvalidRequest(f"{field} must name a host", field=field)
    return parts


def validate_base_url(value: str) -> str:
    """A provider base URL: http(s), a host, no credentials, no fragment; trailing slashes dropped."""
    parts = _split_url(value, "baseUrl", BASE_URL_SCHEMES)
    if "@" in parts.netloc:
        raise InvalidRequest("baseUrl must not contain credentials; send the key as apiKey", field="baseUrl")
    if parts.fragment or value.endswith("#"):
        raise InvalidRequest("baseUrl must not have a fragment", field="baseUrl")
    return urlunsplit(parts._replace(path=parts.path.rstrip("/")))


def validate_proxy_url(value: str) -> str:
    """A proxy URL: http, https, socks5 or socks5h, a host and a port, optional `user:password@`, no path."""
    parts = _split_url(value, "url", PROXY_URL_SCHEMES)
    if parts.port is None:
        raise InvalidRequest("url must include a port", field="url")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in value or "#" in value:
        raise InvalidRequest("url must be scheme://[user:password@]host:port only", field="url")
    return value


# --- factory keys ----------------------------------------------------------------------------------


def _key_context(key_id: int) -> str:
    return f"factory_key:{key_id}"


def decrypt_factory_key(state: AppState, row: FactoryKey) -> str:
    """The plaintext upstream key of a factory key row (for the proxy's upstream call only)."""
    return state.keybox.decrypt(row.key_encrypted, _key_context(row.id))


def _key_snapshot(row: FactoryKey) -> dict[str, Any]:
    return FactoryKeyView.of(row).model_dump(mode="json")


async def _require_proxy(session: AsyncSession, proxy_id: int | None) -> None:
    """400 (field `proxyId`) unless the proxy exists; holds a share lock so it cannot vanish meanwhile."""
    if proxy_id is None:
        return
    if await session.get(Proxy, proxy_id, with_for_update={"read": True}) is None:
        raise InvalidRequest(f"No proxy with id {proxy_id}", field="proxyId")


async def _flush(session: AsyncSession, message: str, field: str | None = None) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(message, field=field) from exc


async def list_factory_keys(session: AsyncSession) -> list[FactoryKey]:
    """Every factory key, ordered by id."""
    return list(await session.scalars(select(FactoryKey).order_by(FactoryKey.id)))


async def create_factory_key(
    session: AsyncSession, state: AppState, actor: str, body: NewFactoryKey
) -> FactoryKey:
    """Store a new upstream key, encrypted, healthy; 400 naming the field for a bad URL or proxy, 422
    (field `provider`) for a provider that is no row of `providers`."""
    base_url = validate_base_url(body.baseUrl)
    await require_provider(session, body.provider)
    await _require_proxy(session, body.proxyId)
    row = FactoryKey(
        name=body.name,
        provider=body.provider,
        base_url=base_url,
        key_encrypted=b"",  # encrypted below, once the row id that binds the ciphertext is known
        last4=body.apiKey[-4:],
        proxy_id=body.proxyId,
        status="healthy",
        requests_count=0,
        spend_nanos=0,
        created_at=state.clock.now(),
    )
    session.add(row)
    await _flush(session, "The proxy was deleted meanwhile", "proxyId")
    row.key_encrypted = state.keybox.encrypt(body.apiKey, _key_context(row.id))
    await session.flush()
    await record_audit(
        session,
        state,
        actor=actor,
        action="factory_key.create",
        target=f"factory_key:{row.id}",
        after=_key_snapshot(row),
    )
    return row


async def update_factory_key(
    session: AsyncSession, state: AppState, actor: str, key_id: int, patch: FactoryKeyPatch
) -> FactoryKey:
    """Change the fields present in `patch`; 404 if unknown. An empty patch changes (and audits) nothing."""
    base_url = validate_base_url(patch.baseUrl) if patch.baseUrl is not None else None
    row = await session.get(FactoryKey, key_id, with_for_update=True)
    if row is None:
        raise NotFound(f"No factory key with id {key_id}")
    if not patch.model_fields_set:
        return row
    if patch.provider is not None:
        await require_provider(session, patch.provider)
    before = _key_snapshot(row)
    if "proxyId" in patch.model_fields_set:
        await _require_proxy(session, patch.proxyId)
        row.proxy_id = patch.proxyId
    if patch.name is not None:
        row.name = patch.name
    if patch.provider is not None:
        row.provider = patch.provider
    if base_url is not None:
        row.base_url = base_url
    if patch.apiKey is not None:
        row.key_encrypted = state.keybox.encrypt(patch.apiKey, _key_context(row.id))
        row.last4 = patch.apiKey[-4:]
    # A key whose connection changed (corrected proxy, URL, key or provider) is tried again at once: its
    # cool-down was earned by the old configuration.
    reconfigured = bool({"proxyId", "baseUrl", "apiKey", "provider"} & patch.model_fields_set)
    if patch.status == "healthy" or (reconfigured and row.status == "cooling_down"):
        row.status, row.last_error, row.cooldown_until = "healthy", None, None
    elif patch.status == "disabled":
        row.status = "disabled"
    await _flush(session, "The proxy was deleted meanwhile", "proxyId")
    after = _key_snapshot(row) | {"apiKeyReplaced": patch.apiKey is not None}
    await record_audit(
        session,
        state,
        actor=actor,
        action="factory_key.update",
        target=f"factory_key:{row.id}",
        before=before,
        after=after,
    )
    return row


async def delete_factory_key(session: AsyncSession, state: AppState, actor: str, key_id: int) -> None:
    """Delete a factory key (404 if unknown); request logs keep its id."""
    row = await session.get(FactoryKey, key_id, with_for_update=True)
    if row is None:
        raise NotFound(f"No factory key with id {key_id}")
    before = _key_snapshot(row)
    await session.delete(row)
    await session.flush()
    await record_audit(
        session,
        state,
        actor=actor,
        action="factory_key.delete",
        target=f"factory_key:{key_id}",
        before=before,
    )


# --- proxies ---------------------------------------------------------------------------------------


def _proxy_view(row: Proxy, bound: list[BoundKey]) -> ProxyView:
    return ProxyView(
        id=row.id,
        name=row.name,
        url=mask_proxy_url(row.url),
        factoryKeys=bound,
        lastError=row.last_error,
        lastErrorAt=row.last_error_at,
        createdAt=row.created_at,
    )


async def list_proxies(session: AsyncSession) -> list[ProxyView]:
    """Every proxy, ordered by id, with the factory keys bound to it; passwords masked."""
    proxies = list(await session.scalars(select(Proxy).order_by(Proxy.id)))
    keys = await session.execute(
        select(FactoryKey.id, FactoryKey.name, FactoryKey.proxy_id)
        .where(FactoryKey.proxy_id.is_not(None))
        .order_by(FactoryKey.id)
    )
    bound: dict[int | None, list[BoundKey]] = {}
    for key_id, name, proxy_id in keys:
        bound.setdefault(proxy_id, []).append(BoundKey(id=key_id, name=name))
    return [_proxy_view(row, bound.get(row.id, [])) for row in proxies]


async def create_proxy(session: AsyncSession, state: AppState, actor: str, body: NewProxy) -> ProxyView:
    """Add a proxy; 409 (field `name`) if the name is taken, 400 (field `url`) for a bad URL."""
    url = validate_proxy_url(body.url)
    taken = f"A proxy named {body.name!r} already exists"
    if await session.scalar(select(Proxy.id).where(Proxy.name == body.name)) is not None:
        raise Conflict(taken, field="name")
    row = Proxy(name=body.name, url=mask_proxy_url(url), created_at=state.clock.now())
    session.add(row)
    await _flush(session, taken, "name")
    seal(row, url, state.keybox)  # the credentials only encrypted, bound to the row's id
    view = _proxy_view(row, [])
    await record_audit(
        session,
        state,
        actor=actor,
        action="proxy.create",
        target=f"proxy:{row.id}",
        after=view.model_dump(mode="json"),
    )
    return view


async def delete_proxy(session: AsyncSession, state: AppState, actor: str, proxy_id: int) -> None:
    """Delete a proxy; 404 if unknown, 409 (with `factoryKeyIds`) while factory keys are bound to it."""
    row = await session.get(Proxy, proxy_id, with_for_update=True)
    if row is None:
        raise NotFound(f"No proxy with id {proxy_id}")
    bound = list(await session.scalars(select(FactoryKey.id).where(FactoryKey.proxy_id == proxy_id)))
    in_use = "The proxy is used by factory keys; unbind or delete them first"
    if bound:
        raise Conflict(in_use, factoryKeyIds=bound)
    before = _proxy_view(row, []).model_dump(mode="json")
    await session.delete(row)
    await _flush(session, in_use)
    await record_audit(
        session, state, actor=actor, action="proxy.delete", target=f"proxy:{proxy_id}", before=before
    )
