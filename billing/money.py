"""Money as integers: micro-dollars everywhere (1_000_000 = US$1.00).

Stripe speaks cents, people speak dollars; both are converted here, exactly, at the
boundary. Nothing in this module uses floats. ``Decimal`` appears only to parse a
typed amount and to format one for display, never to store or add money.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MICROS_PER_USD = 1_000_000
MICROS_PER_CENT = 10_000
MICROS_DECIMALS = 6


def usd_to_micros(amount: Decimal | str | int) -> int:
    """US dollars (``Decimal("12.34")``, ``"12.34"``, ``12``) to micro-dollars, exactly.

    Raises ValueError for anything that is not a finite number or that has a part
    finer than a micro-dollar (``"0.0000001"``)."""
    if isinstance(amount, float):  # pragma: no cover - guarded by the type, kept for callers without mypy
        raise TypeError("floats are not money; pass a Decimal or a string")
    try:
        value = Decimal(amount) if not isinstance(amount, Decimal) else amount
    except (InvalidOperation, ValueError):
        raise ValueError(f"{amount!r} is not an amount in US dollars") from None
    if not value.is_finite():
        raise ValueError(f"{amount!r} is not an amount in US dollars")
    micros = value * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise ValueError(f"{amount!r} is finer than a micro-dollar")
    return int(micros)


def micros_to_usd(micros: int) -> Decimal:
    """Micro-dollars as an exact Decimal number of dollars (six places)."""
    return Decimal(micros).scaleb(-MICROS_DECIMALS)


def cents_to_micros(cents: int) -> int:
    """Stripe's integer cents to micro-dollars (exact)."""
    return cents * MICROS_PER_CENT


def micros_to_cents(micros: int) -> int:
    """Micro-dollars to Stripe's cents; refuses an amount that is not whole cents."""
    cents, rest = divmod(micros, MICROS_PER_CENT)
    if rest:
        raise ValueError(f"{micros} micro-dollars is not a whole number of cents")
    return cents


def usd_amount(micros: int, decimals: int = 2) -> str:
    """``-1234567`` -> ``"-1.23"`` (``decimals`` places, half away from zero).

    With six decimals the text is exact; the cost reports use it so their amounts
    add up to the last micro-dollar."""
    if not 0 <= decimals <= MICROS_DECIMALS:
        raise ValueError("decimals must be between 0 and 6")
    if decimals == MICROS_DECIMALS:  # exact, and fast enough for 100,000-row reports
        whole, fraction = divmod(abs(micros), MICROS_PER_USD)
        return f"{'-' if micros < 0 else ''}{whole}.{fraction:06d}"
    quantum = Decimal(1).scaleb(-decimals)
    value = micros_to_usd(micros).quantize(quantum, rounding=ROUND_HALF_UP)
    if value == 0:
        value = abs(value)  # never "-0.00"
    return f"{value:,.{decimals}f}" if decimals <= 2 else f"{value:.{decimals}f}"


def format_usd(micros: int, decimals: int = 2) -> str:
    """``1234567`` -> ``"US$1.23"``; ``-500000`` -> ``"-US$0.50"``. Thousands get commas
    at two decimals or fewer (pages); finer amounts (reports) do not."""
    text = usd_amount(micros, decimals)
    if text.startswith("-"):
        return f"-US${text[1:]}"
    return f"US${text}"
