"""Request and response bodies of the provider admin endpoints, and the provider name every body uses.

Shapes and types are checked here (422 naming the field); the base URL is checked by the service (400
naming `baseUrl`) with the factory keys' rule (`trollllm.upstream.service.validate_base_url`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictBool, StringConstraints

from trollllm.providers.tables import Provider

PROVIDER_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
ProviderName = Annotated[
    str,
    StringConstraints(strict=True, pattern=PROVIDER_NAME_PATTERN),
    Field(description="a row of `GET /api/admin/providers`, e.g. `openai`, `anthropic`, `groq`"),
]
"""A provider's name as bodies carry it; whether such a row exists is checked by the service (422)."""
WireFormatName = Literal["openai", "anthropic"]
DisplayName = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64, pattern=r"\S")]
BaseUrl = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=300)]


class ProviderFields(BaseModel):
    """Every field of a provider row but its name: the body of `PUT /api/admin/providers/{name}`."""

    displayName: DisplayName | None = Field(default=None, description="shown to users; the name if omitted")
    wireFormat: WireFormatName = Field(
        description="`openai` (chat completions) or `anthropic` (messages): what its API speaks"
    )
    baseUrl: BaseUrl = Field(
        description="http(s) API root, e.g. `https://api.deepseek.com/v1`; users' own keys go there"
    )
    responsesApi: StrictBool | None = Field(
        default=None,
        description="its API serves `/v1/responses` (OpenAI's own): Responses requests are forwarded as "
        "they are, not translated; omitted: unchanged (false for a new provider)",
    )


class NewProvider(ProviderFields):
    """The body of `POST /api/admin/providers`."""

    name: ProviderName


class ProviderView(BaseModel):
    """A provider row as the admin API shows it."""

    name: str
    displayName: str
    wireFormat: str
    baseUrl: str
    responsesApi: bool
    createdAt: datetime

    @classmethod
    def of(cls, row: Provider) -> ProviderView:
        """The view of a provider row."""
        return cls(
            name=row.name,
            displayName=row.display_name,
            wireFormat=row.wire_format,
            baseUrl=row.base_url,
            responsesApi=row.responses_api,
            createdAt=row.created_at,
        )
