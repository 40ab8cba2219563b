"""The model catalog as the hot path sees it: every model row with its provider's wire format, cached
briefly in memory.

Prices are read per request from here, never from the request; an admin change calls `invalidate()` so it
applies to the next request on this instance (and within `TTL_S` on every other). A model's wire format
comes from its provider row, joined in the same load, so the request path asks no extra query for it;
an admin change to a provider invalidates the catalog too.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.clock import Clock
from trollllm.money import Prices
from trollllm.pricing.tables import LlmModel
from trollllm.providers.tables import Provider
from trollllm.wire import WireFormat

TTL_S = 5.0


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """An immutable snapshot of one model row."""

    model_id: str
    provider: str
    wire: WireFormat  # what the provider's API speaks: decides whether a request is translated
    upstream_model: str
    prices: Prices
    max_output_tokens: int
    enabled: bool
    url_media_tokens: int = 0  # input tokens held per media item sent by URL; 0 refuses them
    responses_api: bool = False  # the provider serves `/v1/responses`: Responses requests go as they are
    kind: str = "chat"  # `chat` or `embedding` (served by `/v1/embeddings` only)

    @property
    def worst_input_price(self) -> int:
        """The highest per-MTok price any input token can be billed at (bounds the hold)."""
        prices = self.prices
        return max(prices.input_per_mtok, prices.cache_write_per_mtok, prices.cache_hit_per_mtok)


class ModelCatalog:
    """Models by id, reloaded from the database when stale or invalidated."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock
        self._models: dict[str, CatalogModel] = {}
        self._loaded_at = float("-inf")

    def invalidate(self) -> None:
        """Forget the snapshot; the next lookup reloads."""
        self._loaded_at = float("-inf")

    async def get(self, model_id: str) -> CatalogModel | None:
        """The model with this id (enabled or not), or None."""
        if self._clock.monotonic() - self._loaded_at > TTL_S:
            await self._reload()
        return self._models.get(model_id)

    async def enabled(self) -> list[CatalogModel]:
        """Every enabled model, by id."""
        if self._clock.monotonic() - self._loaded_at > TTL_S:
            await self._reload()
        return sorted((m for m in self._models.values() if m.enabled), key=lambda m: m.model_id)

    async def _reload(self) -> None:
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(LlmModel, Provider.wire_format, Provider.responses_api).join(
                        Provider, Provider.name == LlmModel.provider
                    )
                )
            ).all()
        self._models = {
            row.model_id: CatalogModel(
                model_id=row.model_id,
                provider=row.provider,
                wire=WireFormat(wire_format),
                upstream_model=row.upstream_model,
                prices=Prices(
                    input_per_mtok=row.input_price_nanos,
                    output_per_mtok=row.output_price_nanos,
                    cache_write_per_mtok=row.cache_write_price_nanos,
                    cache_hit_per_mtok=row.cache_hit_price_nanos,
                ),
                max_output_tokens=row.max_output_tokens,
                enabled=row.enabled,
                url_media_tokens=row.url_media_tokens,
                responses_api=bool(responses_api),
                kind=row.kind,
            )
            for row, wire_format, responses_api in rows
        }
        self._loaded_at = self._clock.monotonic()
