"""Request and response bodies of the factory key and proxy admin endpoints (SPEC §3, §7).

Shapes, types and lengths are checked here (422 naming the field). URLs are checked by the service
(400 naming the field), which also owns the rules for what a base URL or a proxy URL may contain.
A factory key's plaintext exists only in a request body: no view below can carry it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictInt, StringConstraints, field_validator

from trollllm.crypto import mask_key, mask_secrets
from trollllm.money import Money
from trollllm.providers.schemas import ProviderName
from trollllm.upstream.tables import FactoryKey

# 1..100 characters, not all blank; stored as given (HTML included: it is data, JSON-escaped on output).
Name = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=100, pattern=r"\S")]
INT32_MAX = 2**31 - 1
ProxyId = Annotated[StrictInt, Field(ge=1, le=INT32_MAX)]
Url = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=2048)]
# Printable ASCII without spaces: nothing that could split an HTTP header when sent upstream.
UpstreamKey = Annotated[
    str, StringConstraints(strict=True, min_length=8, max_length=512, pattern=r"^[\x21-\x7e]+$")
]


class NewFactoryKey(BaseModel):
    """The body of `POST /api/admin/factory-keys`."""

    name: Name
    provider: ProviderName
    baseUrl: Url = Field(description="http(s) URL of the provider's API, without credentials")
    apiKey: UpstreamKey = Field(description="The upstream key; stored encrypted, never shown again")
    proxyId: ProxyId | None = None


class FactoryKeyPatch(BaseModel):
    """The body of `PATCH /api/admin/factory-keys/{id}`: only the fields present change.

    `provider` moves the key to another provider row (it then serves that provider's models);
    `proxyId: null` unbinds the proxy; `status: "healthy"` re-enables a disabled or cooling key (and clears
    its last error and cooldown), `"disabled"` takes it out of rotation.
    """

    name: Name | None = None
    provider: ProviderName | None = None
    baseUrl: Url | None = None
    apiKey: UpstreamKey | None = None
    proxyId: ProxyId | None = None
    status: Literal["healthy", "disabled"] | None = None

    @field_validator("name", "provider", "baseUrl", "apiKey", "status")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        """Only `proxyId` may be set to null; an explicit null elsewhere is an error, not 'unchanged'."""
        if value is None:
            raise ValueError("must not be null")
        return value


class FactoryKeyView(BaseModel):
    """A factory key as the admin API shows it: the key only as `last4` and its masked form."""

    id: int
    name: str
    provider: str
    baseUrl: str
    last4: str
    maskedKey: str
    proxyId: int | None
    status: str
    lastError: str | None
    cooldownUntil: datetime | None
    requestsCount: int
    spendUsd: float
    createdAt: datetime

    @classmethod
    def of(cls, row: FactoryKey) -> FactoryKeyView:
        """The view of a factory key row (any key-shaped text in the last error is masked too)."""
        return cls(
            id=row.id,
            name=row.name,
            provider=row.provider,
            baseUrl=row.base_url,
            last4=row.last4,
            maskedKey=mask_key(row.last4),
            proxyId=row.proxy_id,
            status=row.status,
            lastError=mask_secrets(row.last_error) if row.last_error is not None else None,
            cooldownUntil=row.cooldown_until,
            requestsCount=row.requests_count,
            spendUsd=Money(row.spend_nanos).to_json(),
            createdAt=row.created_at,
        )


class NewProxy(BaseModel):
    """The body of `POST /api/admin/proxies`."""

    name: Name
    url: Url = Field(
        description="http, https, socks5 or socks5h URL with host and port; may hold user:password"
    )


class BoundKey(BaseModel):
    """A factory key bound to a proxy."""

    id: int
    name: str


class ProxyView(BaseModel):
    """A proxy as the admin API shows it: any password in its URL masked as `****`."""

    id: int
    name: str
    url: str
    factoryKeys: list[BoundKey]
    lastError: str | None = Field(
        default=None, description="why the proxy itself last refused a request (e.g. bad credentials)"
    )
    lastErrorAt: datetime | None = None
    createdAt: datetime
