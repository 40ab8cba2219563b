"""The model catalog as the hot path sees it: every model row with its provider's wire format, cached
briefly in memory.

Prices are read per request from here, never from the request; an admin change calls `invalidate()` so it
applies to the next request on this instance (and within `TTL_S` on every other); requests that find the
snapshot stale together share one reload (`trollllm.snapshot`). A model's wire format comes from its
provider row, joined in the same load, so the request path asks no extra query for it; an admin change to a
provider invalidates the catalog too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.clock import Clock
from trollllm.money import LongContextTier, Prices, TokenPrices
from trollllm.pricing.tables import LlmModel
from trollllm.providers.tables import Provider
from trollllm.snapshot import SnapshotAge
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
    display_name: str = ""  # Anthropic's model list; the row's, else derived from the id
    created_at: datetime | None = None

    def hold_prices(self, input_bound_tokens: int) -> TokenPrices:
        """The token prices a hold bounds a request by: the long-context tier's when its input bound can
        pass the threshold (the input may be cache tokens: each is held at the dearest input price)."""
        return self.prices.tier_for(input_bound_tokens)


def derived_display_name(model_id: str) -> str:
    """A readable name from a model id: `claude-sonnet-4-5` → `Claude Sonnet 4.5`, `gpt-5-mini` →
    `GPT 5 Mini`; a trailing date (`-20250929`) is dropped."""
    words: list[str] = []
    for word in model_id.replace("_", "-").split("-"):
        if not word or (len(word) == 8 and word.isdigit()):
            continue
        if word.isdigit() and words and words[-1][-1].isdigit():
            words[-1] += "." + word  # version parts: 4-5 → 4.5
        elif word.lower() == "gpt":
            words.append("GPT")
        else:
            words.append(word[0].upper() + word[1:])
    return " ".join(words) or model_id


def _long_context(row: LlmModel) -> LongContextTier | None:
    if (
        row.long_context_threshold_tokens is None
        or row.long_context_input_price_nanos is None
        or row.long_context_output_price_nanos is None
    ):
        return None
    return LongContextTier(
        threshold_tokens=row.long_context_threshold_tokens,
        prices=TokenPrices(
            input_per_mtok=row.long_context_input_price_nanos,
            output_per_mtok=row.long_context_output_price_nanos,
            cache_write_per_mtok=row.long_context_cache_write_price_nanos or 0,
            cache_hit_per_mtok=row.long_context_cache_hit_price_nanos or 0,
        ),
    )


class ModelCatalog:
    """Models by id, reloaded from the database when stale or invalidated."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._models: dict[str, CatalogModel] = {}
        self._age = SnapshotAge(clock, TTL_S)

    def invalidate(self) -> None:
        """Forget the snapshot; the next lookup reloads."""
        self._age.invalidate()

    async def get(self, model_id: str) -> CatalogModel | None:
        """The model with this id (enabled or not), or None."""
        if self._age.stale:
            await self._age.refresh(self._reload)
        return self._models.get(model_id)

    async def enabled(self) -> list[CatalogModel]:
        """Every enabled model, by id."""
        if self._age.stale:
            await self._age.refresh(self._reload)
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
                    long_context=_long_context(row),
                    web_search_per_kcalls=row.web_search_price_nanos,
                ),
                max_output_tokens=row.max_output_tokens,
                enabled=row.enabled,
                url_media_tokens=row.url_media_tokens,
                responses_api=bool(responses_api),
                kind=row.kind,
                display_name=row.display_name or derived_display_name(row.model_id),
                created_at=row.created_at,
            )
            for row, wire_format, responses_api in rows
        }
