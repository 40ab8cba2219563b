"""K/M formatting of token and request counts on the admin pages (SPEC §8: 1.5M / 250K), at its boundaries;
long names that a table may wrap between their parts."""

from __future__ import annotations

import pytest

from trollllm.web.render import breakable, count_exact, count_short


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0"),
        (1, "1"),
        (999, "999"),
        (1_000, "1.0K"),
        (1_049, "1.0K"),
        (1_099, "1.0K"),
        (1_500, "1.5K"),
        (1_999, "1.9K"),
        (99_999, "99.9K"),
        (100_000, "100K"),
        (250_000, "250K"),
        (999_999, "999K"),
        (1_000_000, "1.0M"),
        (1_500_000, "1.5M"),
        (99_999_999, "99.9M"),
        (100_000_000, "100M"),
        (999_999_999, "999M"),
        (1_000_000_000, "1.0B"),
        (2_500_000_000_000, "2,500B"),
    ],
)
def test_counts_show_k_m_b_truncated_never_rounded_up(count: int, text: str) -> None:
    assert count_short(count) == text


def test_a_negative_count_keeps_its_sign() -> None:
    assert count_short(-1_500) == "-1.5K"


def test_the_exact_count_has_thousands_separators() -> None:
    assert count_exact(1_500_000) == "1,500,000"
    assert count_exact(999) == "999"


def test_a_long_name_may_break_after_its_separators_and_stays_escaped() -> None:
    assert breakable("anthropic/claude-4.5:eu") == "anthropic/<wbr>claude-<wbr>4.<wbr>5:<wbr>eu"
    assert breakable("model_not_found") == "model_not_found"
    assert breakable("<b>a-b</b>") == "&lt;b&gt;a-<wbr>b&lt;/<wbr>b&gt;"
