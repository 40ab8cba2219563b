"""A request's cost as a formula for its detail page: tokens × price per MTok for each kind, and the sum.

The log keeps tokens and the cost charged, not the prices of the day, so the formula uses the model's
current prices and says so when they no longer give the cost that was charged.
"""

from __future__ import annotations

from dataclasses import dataclass

from trollllm.money import Money, Prices, TokenUsage, cost_of
from trollllm.pricing.catalog import CatalogModel
from trollllm.state import AppState
from trollllm.usage.tables import RequestLog


@dataclass(frozen=True, slots=True)
class FormulaLine:
    """One kind of token: `tokens × $price / 1M = $amount`."""

    kind: str
    tokens: int
    price_per_mtok: Money
    amount: Money


@dataclass(frozen=True, slots=True)
class CostFormula:
    """Every non-zero line, their sum at today's prices, and whether that is what was charged."""

    lines: list[FormulaLine]
    total: Money
    matches_charge: bool


async def model_prices(state: AppState, model_id: str) -> Prices | None:
    """The model's current prices, or None for a model that no longer exists."""
    model: CatalogModel | None = await state.catalog.get(model_id)
    return None if model is None else model.prices


def cost_formula(row: RequestLog, prices: Prices | None) -> CostFormula | None:
    """The formula of `row`'s cost at `prices` (None without prices, or for a request charged nothing
    because it used the caller's own provider key)."""
    if prices is None or row.is_byok:
        return None
    kinds = (
        ("Input", row.input_tokens, prices.input_per_mtok),
        ("Output", row.output_tokens, prices.output_per_mtok),
        ("Cache write", row.cache_write_tokens, prices.cache_write_per_mtok),
        ("Cache hit", row.cache_hit_tokens, prices.cache_hit_per_mtok),
    )
    lines = [
        FormulaLine(kind, tokens, Money(price), cost_of(TokenUsage(input_tokens=tokens), Prices(price, 0)))
        for kind, tokens, price in kinds
        if tokens
    ]
    usage = TokenUsage(row.input_tokens, row.output_tokens, row.cache_write_tokens, row.cache_hit_tokens)
    total = cost_of(usage, prices) if row.is_success or usage.total else Money.ZERO
    return CostFormula(lines=lines, total=total, matches_charge=total.nanos == row.credits_cost_nanos)
