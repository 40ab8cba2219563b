"""Money: the one exact type for USD amounts, and the pure pricing arithmetic.

`Money` is an integer count of nano-dollars (10⁻⁹ USD). Integers make every sum, comparison and database
conditional update exact; one nano-dollar is far below any price a provider charges per token, and an
int64 column holds up to ~$9.2 billion. Prices are stored as nano-dollars per million tokens, so a cost is
Σ tokens × price / 10⁶, rounded *up* to the next nano-dollar once per request (never in the user's favour
by more than a billionth of a dollar, never lost).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import ClassVar

NANOS_PER_USD = 1_000_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000
# The largest amount accepted from input: well inside int64 with room for sums.
MAX_USD = Decimal(1_000_000_000)
_ONE_NANO = Decimal("1e-9")


class MoneyParseError(ValueError):
    """A value that is not an exact, finite USD amount with at most 9 decimals."""


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An exact amount of USD, as an integer count of nano-dollars."""

    nanos: int

    ZERO: ClassVar[Money]

    @classmethod
    def from_usd(cls, value: Decimal | int | str | float) -> Money:
        """Parse USD from a JSON number or string: finite, |value| ≤ 1e9, at most 9 decimals.

        Floats are accepted only because JSON numbers arrive as floats; their shortest decimal text is
        used, so `0.1` means exactly ten cents.
        """
        if isinstance(value, bool):
            raise MoneyParseError("amount must be a number")
        try:
            amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except (InvalidOperation, ValueError, TypeError) as exc:
            raise MoneyParseError("amount must be a number") from exc
        if not amount.is_finite():
            raise MoneyParseError("amount must be finite")
        if abs(amount) > MAX_USD:
            raise MoneyParseError(f"amount must be at most {MAX_USD} USD in absolute value")
        # Quantizing to the nano-dollar is exact for |amount| ≤ 1e9 (≤ 19 digits, within the context's 28),
        # and the comparison is exact at any precision, so no extra decimal can be rounded away unnoticed
        # (multiplying by 10⁹ first would round e.g. `1e-99999999` or a 32-digit string to a whole number).
        quantized = amount.quantize(_ONE_NANO)
        if quantized != amount:
            raise MoneyParseError("amount has more than 9 decimal places")
        return cls(int(quantized.scaleb(9)))

    def to_decimal(self) -> Decimal:
        """The exact amount in USD."""
        return Decimal(self.nanos) / NANOS_PER_USD

    def to_json(self) -> float:
        """USD as a JSON number; exact in text up to 15 significant digits (any balance under $1M)."""
        return self.nanos / NANOS_PER_USD

    # How the UI shows amounts (SPEC §4), one rule for every page, chart label and card:
    # - a request's cost: `$X.XXXXXX`, rounded up to the micro-dollar: never shown below what was charged;
    # - spend (sums of costs: usage, totals, chart values): 2 to 6 decimals, rounded up the same way, so a
    #   card and its chart always agree;
    # - balances and limits: 2 to 6 decimals, truncated: never shown above what is there;
    # - zero is `$0` in every kind. The exact amount (`format_exact`) goes in a hover title.

    def format_cost(self) -> str:
        """A request's cost as the UI shows it: `$X.XXXXXX` (rounded away from zero), `$0` for zero."""
        if self.nanos == 0:
            return "$0"
        micros = -(-abs(self.nanos) // 1000)
        sign = "-" if self.nanos < 0 else ""
        whole, frac = divmod(micros, 1_000_000)
        return f"{sign}${whole}.{frac:06d}"

    def format_exact(self) -> str:
        """The exact amount as dollars with 9 decimals (`$0.000017500`), for hover text."""
        sign = "-" if self.nanos < 0 else ""
        whole, frac = divmod(abs(self.nanos), NANOS_PER_USD)
        return f"{sign}${whole}.{frac:09d}"

    def format_balance(self) -> str:
        """Balances and limits: 2 to 6 decimals (`$225.00`, `$7.654321`), truncated; `$0` for zero.

        Shown exactly where 6 decimals suffice; otherwise truncated to the micro-dollar, so a balance
        is never displayed as more than it is.
        """
        return _two_to_six_decimals(self.nanos, round_up=False)

    def format_spend(self) -> str:
        """Spend (usage, totals, chart values): 2 to 6 decimals, rounded up; `$0` for zero.

        A sum of charges is never displayed as less than was charged, like each cost in it.
        """
        return _two_to_six_decimals(self.nanos, round_up=True)

    def __add__(self, other: Money) -> Money:
        return Money(self.nanos + other.nanos)

    def __sub__(self, other: Money) -> Money:
        return Money(self.nanos - other.nanos)

    def __neg__(self) -> Money:
        return Money(-self.nanos)

    def __bool__(self) -> bool:
        return self.nanos != 0


Money.ZERO = Money(0)


def _two_to_six_decimals(nanos: int, *, round_up: bool) -> str:
    if nanos == 0:
        return "$0"
    sign = "-" if nanos < 0 else ""
    micros = -(-abs(nanos) // 1000) if round_up else abs(nanos) // 1000
    whole, frac = divmod(micros, 1_000_000)
    digits = f"{frac:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}${whole}.{digits}"


def parse_price_per_mtok(value: Decimal | int | str | float) -> int:
    """Parse a price in USD per million tokens into nano-dollars per million tokens (≥ 0)."""
    price = Money.from_usd(value)
    if price.nanos < 0:
        raise MoneyParseError("price must be ≥ 0")
    return price.nanos


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Billed token counts of one request; the four are disjoint (input is net of cache tokens)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_hit_tokens: int = 0
    web_search_calls: int = 0
    """Server-side web searches the upstream reported (Anthropic `server_tool_use.web_search_requests`,
    Responses `web_search_call` items): billed per 1,000, not per token."""

    @property
    def total(self) -> int:
        """'Tokens used' for limits: the sum of the four counts."""
        return self.input_tokens + self.output_tokens + self.cache_write_tokens + self.cache_hit_tokens


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """The four token prices of one tier, in nano-dollars per million tokens."""

    input_per_mtok: int
    output_per_mtok: int
    cache_write_per_mtok: int = 0
    cache_hit_per_mtok: int = 0

    @property
    def worst_input(self) -> int:
        """The highest price any input token can be billed at (bounds a hold)."""
        return max(self.input_per_mtok, self.cache_write_per_mtok, self.cache_hit_per_mtok)


@dataclass(frozen=True, slots=True)
class LongContextTier:
    """A request whose input (input + cache write + cache hit) passes `threshold_tokens` is billed entirely
    at `prices`."""

    threshold_tokens: int
    prices: TokenPrices


@dataclass(frozen=True, slots=True)
class Prices(TokenPrices):
    """A model's prices: its token prices (nano-dollars per million tokens), its long-context tier, and
    web search in nano-dollars per 1,000 searches (None: web search is not sold for this model)."""

    long_context: LongContextTier | None = None
    web_search_per_kcalls: int | None = None

    def tier_for(self, input_tokens: int) -> TokenPrices:
        """The token prices a request with this many input tokens (cache tokens included) is billed at."""
        tier = self.long_context
        if tier is not None and input_tokens > tier.threshold_tokens:
            return tier.prices
        return self


# Each message costs a few framing tokens beyond its text; the raw JSON byte count already exceeds them,
# so a request's bytes + this margin bounds its input tokens for text (a token is at least one byte).
INPUT_MARGIN_TOKENS = 64


def hold_bound(prices: Prices, input_tokens: int, output_tokens: int, web_searches: int = 0) -> Money:
    """The most a request can cost, which its hold reserves: every input token at the dearest input price
    of its tier, every output token it may produce, each search it may run; rounded up to the nano-dollar.

    The gate holds this for every charged request; the Friend Key page shows it for the smallest request
    at a model's full output (below it, a cap can never admit such a request).
    """
    tier = prices.tier_for(input_tokens)
    numerator = input_tokens * tier.worst_input + output_tokens * tier.output_per_mtok
    numerator += web_searches * (prices.web_search_per_kcalls or 0) * 1000
    return Money(ceil_div(numerator, TOKENS_PER_PRICE_UNIT))


def cost_of(usage: TokenUsage, prices: Prices) -> Money:
    """Cost of a request: Σ tokens × price per MTok / 10⁶ (at the long-context tier's prices when its input
    passes the threshold) + searches × price per 1,000, rounded up once to the nano-dollar."""
    tier = prices.tier_for(usage.input_tokens + usage.cache_write_tokens + usage.cache_hit_tokens)
    numerator = (
        usage.input_tokens * tier.input_per_mtok
        + usage.output_tokens * tier.output_per_mtok
        + usage.cache_write_tokens * tier.cache_write_per_mtok
        + usage.cache_hit_tokens * tier.cache_hit_per_mtok
    )
    if usage.web_search_calls:
        # nanos per 1,000 calls, in the numerator's unit (nanos × 10⁶): × 10⁶ / 10³.
        numerator += usage.web_search_calls * (prices.web_search_per_kcalls or 0) * 1000
    return Money(-(-numerator // TOKENS_PER_PRICE_UNIT))


def usage_from_openai(usage: dict[str, object]) -> TokenUsage:
    """Billed usage from an OpenAI `usage` object: cached prompt tokens are hits, not input again."""
    prompt = _as_count(usage.get("prompt_tokens"))
    completion = _as_count(usage.get("completion_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = _as_count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    cached = min(cached, prompt)
    return TokenUsage(input_tokens=prompt - cached, output_tokens=completion, cache_hit_tokens=cached)


def usage_from_responses(usage: dict[str, object], web_search_calls: int = 0) -> TokenUsage:
    """Billed usage from a Responses API `usage` object: `input_tokens` includes the cached ones (hits,
    not input again) and the cache writes its details name; `output_tokens` includes the reasoning ones."""
    total_input = _as_count(usage.get("input_tokens"))
    details = usage.get("input_tokens_details")
    if not isinstance(details, dict):
        details = {}
    cached = min(_as_count(details.get("cached_tokens")), total_input)
    written = min(_as_count(details.get("cache_write_tokens")), total_input - cached)
    return TokenUsage(
        input_tokens=total_input - cached - written,
        output_tokens=_as_count(usage.get("output_tokens")),
        cache_write_tokens=written,
        cache_hit_tokens=cached,
        web_search_calls=web_search_calls,
    )


def usage_from_anthropic(usage: dict[str, object]) -> TokenUsage:
    """Billed usage from an Anthropic `usage` object, whose three input counts are already disjoint
    (thinking tokens are in `output_tokens`); web searches from `server_tool_use.web_search_requests`."""
    server_tools = usage.get("server_tool_use")
    searches = server_tools.get("web_search_requests") if isinstance(server_tools, dict) else 0
    return TokenUsage(
        input_tokens=_as_count(usage.get("input_tokens")),
        output_tokens=_as_count(usage.get("output_tokens")),
        cache_write_tokens=_as_count(usage.get("cache_creation_input_tokens")),
        cache_hit_tokens=_as_count(usage.get("cache_read_input_tokens")),
        web_search_calls=_as_count(searches),
    )


def _as_count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


@dataclass(frozen=True, slots=True)
class ChargeSplit:
    """How one charge is taken from the two balances."""

    from_credits: Money
    from_ref_credits: Money


def split_charge(charge: Money, credits: Money, ref_credits: Money) -> ChargeSplit:
    """Take a charge from `credits` first, then `refCredits`.

    Never takes more than a balance holds; the caller guarantees (by the hold) that the two cover it.
    """
    if charge.nanos < 0:
        raise ValueError("a charge is never negative")
    from_credits = min(charge.nanos, max(credits.nanos, 0))
    from_ref = min(charge.nanos - from_credits, max(ref_credits.nanos, 0))
    if from_credits + from_ref != charge.nanos:
        raise ValueError("balances do not cover the charge")
    return ChargeSplit(Money(from_credits), Money(from_ref))


def usd_text(money: Money) -> str:
    """Plain, exact decimal text of an amount for headers and logs (`0.0175`, `0`)."""
    whole, nanos = divmod(abs(money.nanos), NANOS_PER_USD)
    sign = "-" if money.nanos < 0 else ""
    return f"{sign}{whole}.{nanos:09d}".rstrip("0").rstrip(".")


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer division rounding up, for a positive denominator."""
    return -(-numerator // denominator)
