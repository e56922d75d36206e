"""``{% load billing_tags %}``: money formatting and the model Billing tab.

{{ line.amount_micros|usd }}        US$1.23
{{ line.amount_micros|usd:6 }}      US$1.234567
{{ invoice.amount_paid_cents|usd_cents }}  US$20.00
{{ session|estimate_at_start }}     US$0.10 to US$0.30 as the Start form showed it
{% model_billing model %}           the Billing tab of a model page
"""

from __future__ import annotations

from django import template

from billing import reports
from billing.money import cents_to_micros, format_usd
from training.models import TrainingSession, YoloModel

register = template.Library()


@register.filter
def usd(micros: int | None, decimals: int = 2) -> str:
    return "" if micros is None else format_usd(int(micros), int(decimals))


@register.filter
def usd_cents(cents: int | None) -> str:
    """Stripe's cents (receipts, invoices) as the page shows money: ``2000`` -> ``US$20.00``."""
    return "" if cents is None else format_usd(cents_to_micros(int(cents)))


@register.filter
def estimate_at_start(session: TrainingSession) -> str:
    """The cost estimate recorded when the session started, worded as the Start form
    showed it; "" for a session started before estimates were recorded."""
    low, high = session.estimated_low_micros, session.estimated_high_micros
    if low is None or high is None:
        return ""
    if low == high:
        return format_usd(low)
    if high < 10_000:
        return "under US$0.01"
    return f"{format_usd(low)} \N{EN DASH} {format_usd(high)}"


@register.filter
def duration(seconds: int | None) -> str:
    """``3725`` -> ``1:02:05``."""
    if seconds is None:
        return ""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


@register.inclusion_tag("billing/_model_billing.html")
def model_billing(model: YoloModel) -> dict[str, object]:
    return {"billing": reports.model_billing(model), "model": model}
