"""SPEC §4, Money and pricing: exact amounts, request cost, billed usage, charge splitting, formatting."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trollllm.money import (
    INPUT_MARGIN_TOKENS,
    LongContextTier,
    Money,
    MoneyParseError,
    Prices,
    TokenPrices,
    TokenUsage,
    cost_of,
    hold_bound,
    parse_price_per_mtok,
    split_charge,
    usage_from_anthropic,
    usage_from_openai,
    usd_text,
)

NANOS_PER_USD = 1_000_000_000
MAX_NANOS = 1_000_000_000 * NANOS_PER_USD  # from_usd accepts |amount| ≤ $1e9


def usd(text: str) -> int:
    """Nano-dollars of an exact USD text, independent of the code under test."""
    nanos = Decimal(text) * NANOS_PER_USD
    assert nanos == nanos.to_integral_value()
    return int(nanos)


def per_mtok(text: str) -> int:
    """A price in USD per million tokens, as nano-dollars per million tokens."""
    return usd(text)


def shown_amount(text: str) -> Money:
    """The amount a UI string like `$7.654321` or `-$1.50` displays."""
    assert re.fullmatch(r"-?\$\d+(?:\.\d+)?", text), text
    return Money.from_usd(text.replace("$", "", 1))


def decimals_of(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


moneys = st.integers(min_value=-MAX_NANOS, max_value=MAX_NANOS).map(Money)
balances = st.integers(min_value=0, max_value=MAX_NANOS).map(Money)
token_counts = st.integers(min_value=0, max_value=10_000_000)
prices_per_mtok = st.integers(min_value=0, max_value=usd("1000"))  # up to $1000 per MTok
usages = st.builds(TokenUsage, token_counts, token_counts, token_counts, token_counts)
all_prices = st.builds(Prices, prices_per_mtok, prices_per_mtok, prices_per_mtok, prices_per_mtok)


# --- Money.from_usd: exact parsing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "nanos"),
    [
        (0.1, 100_000_000),  # a JSON float 0.1 means exactly ten cents
        (0.0175, 17_500_000),
        ("0.0175", 17_500_000),
        (Decimal("7.654321"), 7_654_321_000),
        (5, 5_000_000_000),
        (0, 0),
        ("225", 225_000_000_000),
        ("225.00", 225_000_000_000),
        ("0.000000001", 1),
        (1e-9, 1),
        ("-1.5", -1_500_000_000),
        ("1e3", 1_000_000_000_000),
        (1_000_000_000, MAX_NANOS),
        ("-1000000000", -MAX_NANOS),
        ("999999999.999999999", MAX_NANOS - 1),
        ("1.000000000000000000000000000000000000", 1_000_000_000),  # trailing zeros are not decimals
    ],
)
def test_from_usd_parses_exactly(value: Decimal | int | str | float, nanos: int) -> None:
    assert Money.from_usd(value) == Money(nanos)


def test_from_usd_float_uses_shortest_decimal_text_not_binary_value() -> None:
    assert Decimal.from_float(0.1) != Decimal("0.1")  # the binary value of 0.1 is not ten cents
    assert Money.from_usd(0.1) + Money.from_usd(0.2) == Money.from_usd("0.3")


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        "NaN",
        "sNaN",
        math.inf,
        -math.inf,
        "Infinity",
        "-inf",
        1e308,
        "1e308",
        1_000_000_001,
        "-1000000000.000000001",
    ],
)
def test_from_usd_rejects_non_finite_and_out_of_range(value: object) -> None:
    with pytest.raises(MoneyParseError):
        Money.from_usd(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, False])
def test_from_usd_rejects_bools(value: bool) -> None:
    with pytest.raises(MoneyParseError):
        Money.from_usd(value)


@pytest.mark.parametrize("value", ["", "abc", "1.2.3", "$5", "5 USD", "0x10", None, [1], {}])
def test_from_usd_rejects_values_that_are_not_numbers(value: object) -> None:
    with pytest.raises(MoneyParseError):
        Money.from_usd(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        "0.0000000001",
        "0.1234567891",
        0.30000000000000004,  # 0.1 + 0.2 as a float: 17 decimals
        1e-10,
        "1e-99999999",  # far below the context's precision: must not round to 0
        "123456789.12345678900000000000001",  # more digits than the context's precision
    ],
)
def test_from_usd_rejects_more_than_nine_decimals(value: str | float) -> None:
    with pytest.raises(MoneyParseError):
        Money.from_usd(value)


def test_money_parse_error_is_a_value_error() -> None:
    assert issubclass(MoneyParseError, ValueError)


@given(moneys)
def test_from_usd_round_trips_to_decimal(m: Money) -> None:
    assert Money.from_usd(m.to_decimal()) == m


@given(moneys)
def test_from_usd_round_trips_usd_text(m: Money) -> None:
    assert Money.from_usd(usd_text(m)) == m


@given(st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1).map(Money))
def test_json_number_round_trips_under_one_million_dollars(m: Money) -> None:
    assert Money.from_usd(m.to_json()) == m


@pytest.mark.parametrize(
    ("nanos", "text"),
    [(17_500_000, "0.0175"), (0, "0"), (5_000_000_000, "5"), (1, "0.000000001"), (-1_500_000_000, "-1.5")],
)
def test_usd_text_is_plain_exact_decimal(nanos: int, text: str) -> None:
    assert usd_text(Money(nanos)) == text


# --- prices ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "nanos_per_mtok"),
    [(5, 5_000_000_000), ("25", 25_000_000_000), ("0.0375", 37_500_000), (0.5, 500_000_000), (0, 0)],
)
def test_price_per_mtok_parses_to_nanos_per_mtok(value: str | int | float, nanos_per_mtok: int) -> None:
    assert parse_price_per_mtok(value) == nanos_per_mtok


@pytest.mark.parametrize("value", ["-0.000000001", -5, "abc", math.nan, True])
def test_price_per_mtok_rejects_negative_and_non_numbers(value: object) -> None:
    with pytest.raises(MoneyParseError):
        parse_price_per_mtok(value)  # type: ignore[arg-type]


# --- cost_of --------------------------------------------------------------------------------------

SPEC_PRICES = Prices(
    input_per_mtok=per_mtok("5"),
    output_per_mtok=per_mtok("25"),
    cache_write_per_mtok=per_mtok("6.25"),
    cache_hit_per_mtok=per_mtok("0.5"),
)


@pytest.mark.parametrize(
    ("usage", "prices", "expected"),
    [
        pytest.param(TokenUsage(1_000, 500), SPEC_PRICES, Money(17_500_000), id="spec-example-0.0175"),
        pytest.param(TokenUsage(), SPEC_PRICES, Money.ZERO, id="zero-usage"),
        pytest.param(TokenUsage(1_000_000, 0), SPEC_PRICES, Money(usd("5")), id="one-mtok-input"),
        pytest.param(TokenUsage(0, 1_000_000), SPEC_PRICES, Money(usd("25")), id="one-mtok-output"),
        pytest.param(
            TokenUsage(cache_write_tokens=1_000), SPEC_PRICES, Money(usd("0.00625")), id="cache-write-price"
        ),
        pytest.param(
            TokenUsage(cache_hit_tokens=1_000), SPEC_PRICES, Money(usd("0.0005")), id="cache-hit-price"
        ),
        pytest.param(
            TokenUsage(1_000, 500, 2_000, 4_000),
            SPEC_PRICES,
            Money(usd("0.0175") + usd("0.0125") + usd("0.002")),
            id="all-four-counts",
        ),
        pytest.param(
            TokenUsage(1, 0), Prices(per_mtok("0.0375"), 0), Money(38), id="fraction-rounds-up-37.5-to-38"
        ),
        pytest.param(
            TokenUsage(1, 0), Prices(per_mtok("0.000001"), 0), Money(1), id="tiny-fraction-rounds-up-to-1"
        ),
        pytest.param(
            TokenUsage(1, 1),
            Prices(per_mtok("0.0005"), per_mtok("0.0005")),
            Money(1),
            id="rounded-once-per-request-not-per-count",
        ),
        pytest.param(TokenUsage(123, 456, 789, 1011), Prices(0, 0, 0, 0), Money.ZERO, id="free-model"),
    ],
)
def test_cost_of(usage: TokenUsage, prices: Prices, expected: Money) -> None:
    assert cost_of(usage, prices) == expected


def test_cost_of_spec_example_is_exactly_0_0175_usd() -> None:
    cost = cost_of(TokenUsage(input_tokens=1_000, output_tokens=500), SPEC_PRICES)
    assert cost.to_decimal() == Decimal("0.0175")
    assert usd_text(cost) == "0.0175"
    assert cost.format_cost() == "$0.017500"


@given(usages, all_prices)
def test_cost_is_sum_of_counts_times_prices_rounded_up(usage: TokenUsage, prices: Prices) -> None:
    exact = Fraction(
        usage.input_tokens * prices.input_per_mtok
        + usage.output_tokens * prices.output_per_mtok
        + usage.cache_write_tokens * prices.cache_write_per_mtok
        + usage.cache_hit_tokens * prices.cache_hit_per_mtok,
        1_000_000,
    )
    assert cost_of(usage, prices) == Money(math.ceil(exact))


@given(usages, all_prices, st.sampled_from(range(4)), token_counts)
def test_cost_is_monotone_in_each_token_count(
    usage: TokenUsage, prices: Prices, which: int, more: int
) -> None:
    counts = [usage.input_tokens, usage.output_tokens, usage.cache_write_tokens, usage.cache_hit_tokens]
    counts[which] += more
    assert cost_of(TokenUsage(*counts), prices) >= cost_of(usage, prices)


@given(usages, usages, all_prices)
def test_cost_is_additive_across_disjoint_usages_up_to_one_nano(
    a: TokenUsage, b: TokenUsage, prices: Prices
) -> None:
    combined = TokenUsage(
        a.input_tokens + b.input_tokens,
        a.output_tokens + b.output_tokens,
        a.cache_write_tokens + b.cache_write_tokens,
        a.cache_hit_tokens + b.cache_hit_tokens,
    )
    excess = cost_of(a, prices) + cost_of(b, prices) - cost_of(combined, prices)
    assert excess.nanos in {0, 1}


def test_tokens_used_is_the_sum_of_the_four_counts() -> None:
    assert TokenUsage(1, 20, 300, 4_000).total == 4_321


# --- usage_from_openai ----------------------------------------------------------------------------


def test_openai_cached_tokens_are_hits_subtracted_from_input() -> None:
    usage = usage_from_openai(
        {"prompt_tokens": 1_000, "completion_tokens": 200, "prompt_tokens_details": {"cached_tokens": 800}}
    )
    assert usage == TokenUsage(
        input_tokens=200, output_tokens=200, cache_write_tokens=0, cache_hit_tokens=800
    )


def test_openai_cached_tokens_are_billed_at_hit_price_not_input_price_again() -> None:
    usage = usage_from_openai(
        {"prompt_tokens": 1_000, "completion_tokens": 0, "prompt_tokens_details": {"cached_tokens": 1_000}}
    )
    assert cost_of(usage, SPEC_PRICES) == Money(usd("0.0005"))


@pytest.mark.parametrize(
    "details",
    [{}, {"prompt_tokens_details": None}, {"prompt_tokens_details": {}}, {"prompt_tokens_details": 5}],
    ids=["missing", "null", "empty", "not-an-object"],
)
def test_openai_missing_details_means_no_cache_hits(details: dict[str, object]) -> None:
    usage = usage_from_openai({"prompt_tokens": 1_000, "completion_tokens": 200, **details})
    assert usage == TokenUsage(input_tokens=1_000, output_tokens=200)


def test_openai_empty_usage_is_zero() -> None:
    assert usage_from_openai({}) == TokenUsage()


def test_openai_cached_more_than_prompt_clamps_to_prompt() -> None:
    usage = usage_from_openai(
        {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 150}}
    )
    assert usage == TokenUsage(input_tokens=0, output_tokens=7, cache_hit_tokens=100)


GARBAGE = [-5, "100", True, False, 1.5, None, [3], {"n": 3}]


@pytest.mark.parametrize("bad", GARBAGE, ids=repr)
@pytest.mark.parametrize("field", ["prompt_tokens", "completion_tokens", "cached_tokens"])
def test_openai_garbage_counts_are_zero(field: str, bad: object) -> None:
    raw: dict[str, object] = {"prompt_tokens": 1_000, "completion_tokens": 200}
    details: dict[str, object] = {"cached_tokens": 300}
    (details if field == "cached_tokens" else raw)[field] = bad
    raw["prompt_tokens_details"] = details
    usage = usage_from_openai(raw)
    expected = {
        "prompt_tokens": TokenUsage(input_tokens=0, output_tokens=200, cache_hit_tokens=0),
        "completion_tokens": TokenUsage(input_tokens=700, output_tokens=0, cache_hit_tokens=300),
        "cached_tokens": TokenUsage(input_tokens=1_000, output_tokens=200, cache_hit_tokens=0),
    }[field]
    assert usage == expected


@given(
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=10**9),
)
def test_openai_billed_counts_are_never_negative_and_cover_the_prompt(
    prompt: int, completion: int, cached: int
) -> None:
    usage = usage_from_openai(
        {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
    )
    assert min(usage.input_tokens, usage.output_tokens, usage.cache_hit_tokens) >= 0
    assert usage.input_tokens + usage.cache_hit_tokens == prompt
    assert usage.cache_write_tokens == 0


# --- usage_from_anthropic -------------------------------------------------------------------------


def test_anthropic_three_input_counts_are_disjoint() -> None:
    usage = usage_from_anthropic(
        {
            "input_tokens": 50,
            "cache_creation_input_tokens": 1_000,
            "cache_read_input_tokens": 2_000,
            "output_tokens": 300,
        }
    )
    assert usage == TokenUsage(
        input_tokens=50, output_tokens=300, cache_write_tokens=1_000, cache_hit_tokens=2_000
    )


def test_anthropic_missing_cache_counts_are_zero() -> None:
    usage = usage_from_anthropic({"input_tokens": 10, "output_tokens": 20})
    assert usage == TokenUsage(input_tokens=10, output_tokens=20)


@pytest.mark.parametrize("bad", GARBAGE, ids=repr)
@pytest.mark.parametrize(
    "field", ["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]
)
def test_anthropic_garbage_counts_are_zero(field: str, bad: object) -> None:
    raw: dict[str, object] = {
        "input_tokens": 1,
        "output_tokens": 2,
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 4,
        field: bad,
    }
    usage = usage_from_anthropic(raw)
    counts = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_hit_tokens,
    }
    assert counts == {
        "input_tokens": 1,
        "output_tokens": 2,
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 4,
        field: 0,
    }


# --- split_charge: credits first, then refCredits ------------------------------------------------


@pytest.mark.parametrize(
    ("charge", "credits", "ref_credits", "from_credits", "from_ref"),
    [
        pytest.param(300, 1_000, 1_000, 300, 0, id="credits-cover-all"),
        pytest.param(1_000, 1_000, 0, 1_000, 0, id="credits-exactly-cover"),
        pytest.param(1_500, 1_000, 1_000, 1_000, 500, id="split-when-credits-cover-part"),
        pytest.param(700, 0, 1_000, 0, 700, id="ref-credits-only-when-credits-empty"),
        pytest.param(2_000, 1_000, 1_000, 1_000, 1_000, id="both-exhausted-exactly"),
        pytest.param(0, 0, 0, 0, 0, id="zero-charge"),
        pytest.param(500, -100, 1_000, 0, 500, id="negative-credits-are-empty"),
    ],
)
def test_split_charge(charge: int, credits: int, ref_credits: int, from_credits: int, from_ref: int) -> None:
    split = split_charge(Money(charge), Money(credits), Money(ref_credits))
    assert (split.from_credits, split.from_ref_credits) == (Money(from_credits), Money(from_ref))


def test_split_charge_raises_when_balances_cannot_cover() -> None:
    with pytest.raises(ValueError, match="do not cover"):
        split_charge(Money(2_001), Money(1_000), Money(1_000))


def test_split_charge_rejects_negative_charge() -> None:
    with pytest.raises(ValueError, match="never negative"):
        split_charge(Money(-1), Money(1_000), Money(1_000))


signed_balances = st.integers(min_value=-(10**12), max_value=MAX_NANOS).map(Money)


@given(balances, signed_balances, signed_balances)
def test_split_charge_never_takes_more_than_a_balance_holds(
    charge: Money, credits: Money, ref_credits: Money
) -> None:
    if charge.nanos > max(credits.nanos, 0) + max(ref_credits.nanos, 0):
        return
    split = split_charge(charge, credits, ref_credits)
    assert Money.ZERO <= split.from_credits <= max(credits, Money.ZERO)
    assert Money.ZERO <= split.from_ref_credits <= max(ref_credits, Money.ZERO)


@given(balances, signed_balances, signed_balances)
def test_split_charge_parts_sum_to_the_charge(charge: Money, credits: Money, ref_credits: Money) -> None:
    if charge.nanos > max(credits.nanos, 0) + max(ref_credits.nanos, 0):
        return
    split = split_charge(charge, credits, ref_credits)
    assert split.from_credits + split.from_ref_credits == charge


@given(balances, signed_balances, signed_balances)
def test_split_charge_uses_credits_first(charge: Money, credits: Money, ref_credits: Money) -> None:
    if charge.nanos > max(credits.nanos, 0) + max(ref_credits.nanos, 0):
        return
    split = split_charge(charge, credits, ref_credits)
    if split.from_ref_credits:
        assert split.from_credits == max(credits, Money.ZERO)  # credits exhausted first
    if charge <= credits:
        assert split.from_ref_credits == Money.ZERO


@given(balances, signed_balances, signed_balances, st.integers(min_value=1, max_value=10**12))
def test_split_charge_raises_when_both_balances_cannot_cover(
    charge: Money, credits: Money, ref_credits: Money, shortfall: int
) -> None:
    available = max(credits.nanos, 0) + max(ref_credits.nanos, 0)
    with pytest.raises(ValueError, match="do not cover"):
        split_charge(Money(available + shortfall), credits, ref_credits)


# --- formatting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (17_500_000, "$0.017500"),
        (0, "$0"),  # zero is `$0` in every kind (issue 28)
        (225_000_000_000, "$225.000000"),
        (7_654_321_000, "$7.654321"),
        (1, "$0.000001"),  # rounded up to the micro-dollar: a cost is never shown as less
        (37_500_001, "$0.037501"),
        (1_000_000_000_000, "$1000.000000"),
    ],
)
def test_format_cost_is_dollar_and_six_decimals(nanos: int, text: str) -> None:
    assert Money(nanos).format_cost() == text


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (225_000_000_000, "$225.00"),
        (7_654_321_000, "$7.654321"),
        (5_000_000_000, "$5.00"),
        (50_000_000_000, "$50.00"),
        (1_500_000_000, "$1.50"),
        (1_234_000_000, "$1.234"),
        (0, "$0"),
        (7_654_321_999, "$7.654321"),  # truncated: never shown as more than it is
        (999, "$0.00"),
        (1_000_000_000_000, "$1000.00"),  # no thousands separator
        (-1_500_000_000, "-$1.50"),
    ],
)
def test_format_balance_has_two_to_six_decimals(nanos: int, text: str) -> None:
    assert Money(nanos).format_balance() == text


@given(moneys.filter(bool))
def test_format_cost_always_has_six_decimals(m: Money) -> None:
    assert re.fullmatch(r"-?\$\d+\.\d{6}", m.format_cost())


@given(moneys.filter(bool))
def test_format_balance_always_has_two_to_six_decimals(m: Money) -> None:
    assert re.fullmatch(r"-?\$\d+\.\d{2,6}", m.format_balance())


@given(moneys.filter(bool))
def test_format_spend_always_has_two_to_six_decimals(m: Money) -> None:
    assert re.fullmatch(r"-?\$\d+\.\d{2,6}", m.format_spend())


@pytest.mark.parametrize("kind", ["format_cost", "format_balance", "format_spend"])
def test_zero_is_shown_as_dollar_zero_in_every_kind(kind: str) -> None:
    assert getattr(Money.ZERO, kind)() == "$0"


@given(balances)
def test_format_spend_never_shows_less_than_was_charged(m: Money) -> None:
    shown = shown_amount(m.format_spend())
    assert shown >= m
    assert (shown - m).nanos < 1_000


def test_a_spend_total_agrees_with_its_chart_label() -> None:
    # The overview card once truncated $0.009143999 while its chart rounded it up to $0.009144.
    assert Money(9_143_999).format_spend() == "$0.009144"
    assert Money(9_143_999).format_cost() == "$0.009144"


@given(balances)
def test_format_balance_never_shows_more_than_the_balance(m: Money) -> None:
    shown = shown_amount(m.format_balance())
    assert shown <= m
    assert (m - shown).nanos < 1_000  # and less by under a micro-dollar


@given(balances)
def test_format_cost_never_shows_less_than_the_cost(m: Money) -> None:
    shown = shown_amount(m.format_cost())
    assert shown >= m
    assert (shown - m).nanos < 1_000


micro_multiples = st.integers(min_value=-(10**15), max_value=10**15).map(lambda micros: Money(micros * 1_000))


@given(micro_multiples)
def test_format_balance_round_trips_amounts_with_at_most_six_decimals(m: Money) -> None:
    assert Money.from_usd(m.format_balance().replace("$", "", 1)) == m


@given(balances.map(lambda m: Money(m.nanos // 1_000 * 1_000)))
def test_format_balance_lstrip_dollar_round_trips(m: Money) -> None:
    assert Money.from_usd(m.format_balance().lstrip("$")) == m


@given(micro_multiples)
def test_format_cost_round_trips_multiples_of_1000_nanos(m: Money) -> None:
    text = m.format_cost()
    assert decimals_of(text) == 6 or text == "$0"
    assert Money.from_usd(text.replace("$", "", 1)) == m


def test_a_hold_is_every_input_token_at_the_dearest_input_price_and_every_output_token() -> None:
    # $5 input, $25 output, $6.25 cache write per MTok: 64 input tokens and 4,096 output tokens.
    prices = Prices(5 * 10**9, 25 * 10**9, cache_write_per_mtok=6_250_000_000, cache_hit_per_mtok=500_000_000)
    assert hold_bound(prices, INPUT_MARGIN_TOKENS, 4096) == Money.from_usd("0.1028")
    assert hold_bound(prices, 1, 0) == Money(6_250)  # rounded up to the nano-dollar, never down


def test_a_hold_past_the_long_context_threshold_is_at_the_tiers_prices_and_counts_searches() -> None:
    tier = LongContextTier(1000, TokenPrices(10 * 10**9, 50 * 10**9))
    prices = Prices(5 * 10**9, 25 * 10**9, long_context=tier, web_search_per_kcalls=10 * 10**9)
    assert hold_bound(prices, 1000, 100) == Money.from_usd("0.0075")  # at the threshold: base prices
    assert hold_bound(prices, 1001, 100, web_searches=2) == Money.from_usd(
        "0.03501"
    )  # tier prices, 2 x $0.01
