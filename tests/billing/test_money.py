"""billing/money.py: exact conversions, no floats."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.money import cents_to_micros, format_usd, micros_to_cents, micros_to_usd, usd_amount, usd_to_micros


@pytest.mark.parametrize(
    ("micros", "decimals", "text"),
    [
        (0, 2, "US$0.00"),
        (1_234_567, 2, "US$1.23"),
        (1_235_000, 2, "US$1.24"),  # half away from zero
        (-500_000, 2, "-US$0.50"),
        (-1, 2, "US$0.00"),  # never "-US$0.00"
        (1_234_567_890_000, 2, "US$1,234,567.89"),
        (1_234_567, 4, "US$1.2346"),
        (-1_234_567, 6, "-US$1.234567"),
        (7, 6, "US$0.000007"),
    ],
)
def test_it_formats_dollars(micros: int, decimals: int, text: str) -> None:
    assert format_usd(micros, decimals) == text


def test_it_parses_dollars_exactly() -> None:
    assert usd_to_micros("12.34") == 12_340_000
    assert usd_to_micros(Decimal("-0.000001")) == -1
    assert usd_to_micros(5) == 5_000_000
    for bad in ["abc", "1.0000001", "NaN", "Infinity", ""]:
        with pytest.raises(ValueError, match=r"dollars|micro-dollar"):
            usd_to_micros(bad)


def test_it_converts_cents_exactly_and_refuses_fractions_of_a_cent() -> None:
    assert cents_to_micros(2_000) == 20_000_000
    assert micros_to_cents(20_000_000) == 2_000
    with pytest.raises(ValueError, match="cents"):
        micros_to_cents(20_000_001)


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_six_decimals_round_trip_exactly(micros: int) -> None:
    assert usd_to_micros(usd_amount(micros, 6)) == micros
    assert micros_to_usd(micros) * 1_000_000 == micros


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_cents_round_trip_exactly(cents: int) -> None:
    assert micros_to_cents(cents_to_micros(cents)) == cents
