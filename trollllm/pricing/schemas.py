"""Request and response bodies of the model and price admin endpoints (SPEC §4).

Shapes and types are checked here (422 naming the field); prices are parsed exactly by the service with
`parse_price_per_mtok` (400 naming the field), so a JSON number, a decimal string, NaN or 1e308 all reach
one parser.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    WithJsonSchema,
)

from trollllm.money import Money
from trollllm.pricing.tables import DEFAULT_URL_MEDIA_TOKENS, LlmModel
from trollllm.providers.schemas import ProviderName

MODEL_ID_PATTERN = r"^[A-Za-z0-9._:/\-]{1,128}$"
MAX_OUTPUT_TOKENS = 1_000_000

_MAX_PRICE_TEXT = 64


def _price_input(value: object) -> int | float | str:
    """Only the type is checked here (422); the value is parsed exactly by the service (400)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a JSON number or a decimal string")
    if isinstance(value, str) and len(value) > _MAX_PRICE_TEXT:
        raise ValueError(f"must be at most {_MAX_PRICE_TEXT} characters")
    return value


PriceInput = Annotated[
    int | float | str,
    PlainValidator(_price_input),
    WithJsonSchema({"type": ["number", "string"], "description": "USD per million tokens, exact, ≥ 0"}),
]
"""A price in USD per million tokens, as a JSON number or a decimal string."""
UpstreamModelName = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=128, pattern=r"^\S+$")
]


class LongContextFields(BaseModel):
    """The long-context tier: a request whose input (input + cache write + cache hit tokens) passes
    `thresholdTokens` is billed entirely at these four prices (USD per million tokens)."""

    thresholdTokens: StrictInt = Field(gt=0, le=100_000_000)
    inputPricePerMTok: PriceInput
    outputPricePerMTok: PriceInput
    cacheWritePricePerMTok: PriceInput = 0
    cacheHitPricePerMTok: PriceInput = 0


class LongContextView(BaseModel):
    """A model's long-context tier as the admin API shows it."""

    thresholdTokens: int
    inputPricePerMTok: float
    outputPricePerMTok: float
    cacheWritePricePerMTok: float
    cacheHitPricePerMTok: float


class ModelFields(BaseModel):
    """Every field of a model row but its id: the body of `PUT /api/admin/models/{modelId}`."""

    provider: ProviderName
    upstreamModel: UpstreamModelName = Field(description="The model name sent upstream")
    inputPricePerMTok: PriceInput = Field(description="USD per million input tokens, ≥ 0")
    outputPricePerMTok: PriceInput = Field(description="USD per million output tokens, ≥ 0")
    cacheWritePricePerMTok: PriceInput = Field(default=0, description="USD per million cache-write tokens")
    cacheHitPricePerMTok: PriceInput = Field(default=0, description="USD per million cache-hit tokens")
    maxOutputTokens: StrictInt = Field(gt=0, le=MAX_OUTPUT_TOKENS)
    urlMediaTokens: StrictInt = Field(
        default=DEFAULT_URL_MEDIA_TOKENS,
        ge=0,
        le=MAX_OUTPUT_TOKENS,
        description="Input tokens held for each image or document sent by URL; 0 refuses media by URL",
    )
    kind: Literal["chat", "embedding"] = Field(
        default="chat",
        description="`chat` (chat completions, messages, responses) or `embedding` (`/v1/embeddings`)",
    )
    enabled: StrictBool = True
    displayName: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=128)] | None = Field(
        default=None, description="Shown by Anthropic's model list; null: derived from the id"
    )
    longContext: LongContextFields | None = Field(
        default=None, description="The long-context price tier; null: none (the context-1m beta is refused)"
    )
    webSearchPricePerKCalls: PriceInput | None = Field(
        default=None, description="USD per 1,000 web searches; null: web search is refused for this model"
    )


class NewModel(ModelFields):
    """The body of `POST /api/admin/models`."""

    modelId: StrictStr = Field(pattern=MODEL_ID_PATTERN, description="What clients send as `model`")


class ModelView(BaseModel):
    """A model row as the admin API shows it; prices are USD per million tokens."""

    modelId: str
    provider: str
    upstreamModel: str
    inputPricePerMTok: float
    outputPricePerMTok: float
    cacheWritePricePerMTok: float
    cacheHitPricePerMTok: float
    maxOutputTokens: int
    urlMediaTokens: int
    kind: str
    enabled: bool
    displayName: str | None
    longContext: LongContextView | None
    webSearchPricePerKCalls: float | None
    createdAt: datetime
    updatedAt: datetime

    @classmethod
    def of(cls, row: LlmModel) -> ModelView:
        """The view of a model row."""
        return cls(
            modelId=row.model_id,
            provider=row.provider,
            upstreamModel=row.upstream_model,
            inputPricePerMTok=Money(row.input_price_nanos).to_json(),
            outputPricePerMTok=Money(row.output_price_nanos).to_json(),
            cacheWritePricePerMTok=Money(row.cache_write_price_nanos).to_json(),
            cacheHitPricePerMTok=Money(row.cache_hit_price_nanos).to_json(),
            maxOutputTokens=row.max_output_tokens,
            urlMediaTokens=row.url_media_tokens,
            kind=row.kind,
            enabled=row.enabled,
            displayName=row.display_name,
            longContext=_long_context_view(row),
            webSearchPricePerKCalls=(
                None if row.web_search_price_nanos is None else Money(row.web_search_price_nanos).to_json()
            ),
            createdAt=row.created_at,
            updatedAt=row.updated_at,
        )


def _long_context_view(row: LlmModel) -> LongContextView | None:
    if row.long_context_threshold_tokens is None:
        return None
    return LongContextView(
        thresholdTokens=row.long_context_threshold_tokens,
        inputPricePerMTok=Money(row.long_context_input_price_nanos or 0).to_json(),
        outputPricePerMTok=Money(row.long_context_output_price_nanos or 0).to_json(),
        cacheWritePricePerMTok=Money(row.long_context_cache_write_price_nanos or 0).to_json(),
        cacheHitPricePerMTok=Money(row.long_context_cache_hit_price_nanos or 0).to_json(),
    )
