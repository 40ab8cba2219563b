"""Model rows and their prices: reads for the proxy, audited writes for the admin API.

Writes run in the caller's transaction and only flush; the route owns the commit, so a row and its audit
entry commit (or roll back) together. Changes apply to the next request: the proxy reads rows per request.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.audit.service import record_audit
from trollllm.errors import Conflict, InvalidRequest, NotFound
from trollllm.money import MoneyParseError, parse_price_per_mtok
from trollllm.pricing.schemas import ModelFields, ModelView, NewModel
from trollllm.pricing.tables import LlmModel
from trollllm.providers.known import require_provider
from trollllm.state import AppState


async def load_model(session: AsyncSession, model_id: str) -> LlmModel | None:
    """The model row clients address as `model_id` (enabled or not), or None."""
    return await session.get(LlmModel, model_id)


async def enabled_models(session: AsyncSession) -> list[LlmModel]:
    """Every enabled model, ordered by id (what `/v1/models` and friend key limits offer)."""
    query = select(LlmModel).where(LlmModel.enabled.is_(True)).order_by(LlmModel.model_id)
    return list(await session.scalars(query))


async def list_models(session: AsyncSession) -> list[LlmModel]:
    """Every model, enabled or not, ordered by id."""
    return list(await session.scalars(select(LlmModel).order_by(LlmModel.model_id)))


def parse_price(value: Decimal | int | float | str, field: str) -> int:
    """A price field in USD per MTok as nano-dollars per MTok; 400 naming `field` if not exact and ≥ 0."""
    try:
        return parse_price_per_mtok(value)
    except MoneyParseError as exc:
        raise InvalidRequest(f"{field}: {exc}", field=field) from exc


def _parsed_prices(body: ModelFields) -> dict[str, int | None]:
    """Every price parsed before anything is written, so a bad one changes nothing."""
    tier = body.longContext
    search = body.webSearchPricePerKCalls
    return {
        "input_price_nanos": parse_price(body.inputPricePerMTok, "inputPricePerMTok"),
        "output_price_nanos": parse_price(body.outputPricePerMTok, "outputPricePerMTok"),
        "cache_write_price_nanos": parse_price(body.cacheWritePricePerMTok, "cacheWritePricePerMTok"),
        "cache_hit_price_nanos": parse_price(body.cacheHitPricePerMTok, "cacheHitPricePerMTok"),
        "long_context_threshold_tokens": None if tier is None else tier.thresholdTokens,
        "long_context_input_price_nanos": (
            None if tier is None else parse_price(tier.inputPricePerMTok, "longContext.inputPricePerMTok")
        ),
        "long_context_output_price_nanos": (
            None if tier is None else parse_price(tier.outputPricePerMTok, "longContext.outputPricePerMTok")
        ),
        "long_context_cache_write_price_nanos": (
            None
            if tier is None
            else parse_price(tier.cacheWritePricePerMTok, "longContext.cacheWritePricePerMTok")
        ),
        "long_context_cache_hit_price_nanos": (
            None
            if tier is None
            else parse_price(tier.cacheHitPricePerMTok, "longContext.cacheHitPricePerMTok")
        ),
        # USD per 1,000 searches, parsed like a price: nano-USD per 1,000 searches.
        "web_search_price_nanos": None if search is None else parse_price(search, "webSearchPricePerKCalls"),
    }


def _target(model_id: str) -> str:
    return f"model:{model_id}"


def _snapshot(row: LlmModel) -> dict[str, Any]:
    return ModelView.of(row).model_dump(mode="json")


async def create_model(session: AsyncSession, state: AppState, actor: str, body: NewModel) -> LlmModel:
    """Add a model row; 409 (field `modelId`) if the id exists, 422 (field `provider`) for a provider
    that is no row of `providers`."""
    prices = _parsed_prices(body)
    await require_provider(session, body.provider)
    if await session.get(LlmModel, body.modelId) is not None:
        raise Conflict(f"Model {body.modelId!r} already exists", field="modelId")
    now = state.clock.now()
    row = LlmModel(
        model_id=body.modelId,
        provider=body.provider,
        upstream_model=body.upstreamModel,
        max_output_tokens=body.maxOutputTokens,
        url_media_tokens=body.urlMediaTokens,
        kind=body.kind,
        enabled=body.enabled,
        display_name=body.displayName,
        created_at=now,
        updated_at=now,
        **prices,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent create of the same id won the race
        raise Conflict(f"Model {body.modelId!r} already exists", field="modelId") from exc
    await record_audit(
        session, state, actor=actor, action="model.create", target=_target(row.model_id), after=_snapshot(row)
    )
    return row


async def replace_model(
    session: AsyncSession, state: AppState, actor: str, model_id: str, body: ModelFields
) -> LlmModel:
    """Replace every field of a model row (its id stays); 404 if unknown, 422 for an unknown provider."""
    prices = _parsed_prices(body)
    await require_provider(session, body.provider)
    row = await session.get(LlmModel, model_id, with_for_update=True)
    if row is None:
        raise NotFound(f"No model {model_id!r}")
    before = _snapshot(row)
    row.provider = body.provider
    row.upstream_model = body.upstreamModel
    row.max_output_tokens = body.maxOutputTokens
    row.url_media_tokens = body.urlMediaTokens
    row.kind = body.kind
    row.enabled = body.enabled
    row.display_name = body.displayName
    for column, value in prices.items():
        setattr(row, column, value)
    row.updated_at = state.clock.now()
    await session.flush()
    await record_audit(
        session,
        state,
        actor=actor,
        action="model.update",
        target=_target(model_id),
        before=before,
        after=_snapshot(row),
    )
    return row


async def delete_model(session: AsyncSession, state: AppState, actor: str, model_id: str) -> None:
    """Delete a model row; 404 if unknown. Logs keep the model's name; friend key caps naming it stay
    in place and simply no longer match an enabled model."""
    row = await session.get(LlmModel, model_id, with_for_update=True)
    if row is None:
        raise NotFound(f"No model {model_id!r}")
    before = _snapshot(row)
    await session.delete(row)
    await session.flush()
    await record_audit(
        session, state, actor=actor, action="model.delete", target=_target(model_id), before=before
    )
