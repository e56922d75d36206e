from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from django import forms
from django.utils import timezone

from billing.money import usd_to_micros

MAX_ADJUSTMENT_USD = Decimal("100000")
MAX_STATEMENT_DAYS = 3660
MAX_SPENDING_CAP_USD = Decimal("100000")


def spending_cap_micros(amount: Decimal) -> int:
    """A spending cap typed in US dollars, as micro-dollars: above zero, whole cents, at
    most US$100,000 (a typo guard, not a policy). Raises ValueError with the message to
    show; the web forms and the API share it so they refuse the same input."""
    if not amount.is_finite() or amount <= 0:
        raise ValueError("Enter an amount above zero in US dollars, or leave it empty for no cap.")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("Enter the cap in whole cents (at most two decimals).")
    if amount > MAX_SPENDING_CAP_USD:
        raise ValueError("A spending cap is at most US$100,000.")
    return usd_to_micros(amount)


class SpendingCapField(forms.DecimalField):
    """An optional spending cap in US dollars; cleans to micro-dollars, or None (no cap)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_digits", 12)
        super().__init__(**kwargs)
        self.widget.attrs.update({"min": "0.01", "step": "0.01", "inputmode": "decimal"})

    def clean(self, value: Any) -> int | None:
        amount: Decimal | None = super().clean(value)
        if amount is None:
            return None
        try:
            return spending_cap_micros(amount)
        except ValueError as error:
            raise forms.ValidationError(str(error), code="invalid_cap") from None


class MonthlySpendingCapForm(forms.Form):
    """The Billing page: set this account's monthly spending cap, or clear it (empty)."""

    cap = SpendingCapField(label="Monthly spending cap (US$)", help_text="Leave empty for no cap.")


class StatementForm(forms.Form):
    """A date range (UTC days, both included) for the account statement CSV."""

    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                raise forms.ValidationError("The end date must not be before the start date.")
            if (end - start).days > MAX_STATEMENT_DAYS:
                raise forms.ValidationError("A statement covers at most ten years.")
        return data

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """[start 00:00 UTC, the day after end 00:00 UTC)."""
        start: dt.date = self.cleaned_data["start"]
        end: dt.date = self.cleaned_data["end"]
        utc = dt.UTC
        return (
            dt.datetime.combine(start, dt.time.min, tzinfo=utc),
            dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=utc),
        )

    @classmethod
    def initial_range(cls) -> dict[str, dt.date]:
        today = timezone.now().astimezone(dt.UTC).date()
        return {"start": today.replace(day=1), "end": today}


class AdjustBalanceForm(forms.Form):
    """Staff: an amount in US dollars (negative takes money away) and why.

    ``token`` is new each time the form is rendered and becomes the adjustment's
    reference, so submitting the same rendered form twice (a double click, a reload
    of the POST) appends one line, not two."""

    amount = forms.DecimalField(
        label="Amount (US$)",
        max_digits=12,
        decimal_places=6,
        help_text="Negative to take money away. A debit larger than the balance writes off the rest.",
    )
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))
    token = forms.UUIDField(
        widget=forms.HiddenInput,
        initial=uuid.uuid4,
        error_messages={
            "required": "This form is incomplete; open Adjust balance again.",
            "invalid": "This form is incomplete; open Adjust balance again.",
        },
    )

    def clean_amount(self) -> int:
        amount: Decimal = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("Enter an amount other than zero.")
        if abs(amount) > MAX_ADJUSTMENT_USD:
            raise forms.ValidationError("An adjustment is at most US$100,000.")
        return usd_to_micros(amount)

    def clean_reason(self) -> str:
        reason: str = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why the balance changes.")
        return reason

    def reference(self) -> str:
        """The adjustment's idempotency key (``LedgerLine.reference``)."""
        token: uuid.UUID = self.cleaned_data["token"]
        return f"admin adjustment {token}"
