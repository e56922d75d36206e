"""Step 3 of the Train wizard (also the model page's Start and Resume form), and Pay Now's own page."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from training.models import InstanceType, TrainingSession, YoloModel
from training.sessions import StartRequest

MAX_EPOCHS = 10_000
MIN_TIMED_SECONDS = 5 * 60
MAX_TIMED_SECONDS = 7 * 24 * 3600


class StartForm(forms.Form):
    BALANCE, PAY_NOW = "balance", "pay_now"

    mode = forms.ChoiceField(
        choices=TrainingSession.Mode.choices, initial=TrainingSession.Mode.EPOCHS, widget=forms.RadioSelect
    )
    epochs = forms.IntegerField(min_value=1, max_value=MAX_EPOCHS, required=False)
    days = forms.IntegerField(min_value=0, max_value=7, initial=0, required=False)
    hours = forms.IntegerField(min_value=0, max_value=23, initial=1, required=False)
    minutes = forms.IntegerField(min_value=0, max_value=59, initial=0, required=False)
    instance_type = forms.ModelChoiceField(
        queryset=InstanceType.objects.filter(active=True), empty_label=None, widget=forms.RadioSelect
    )
    payment = forms.ChoiceField(
        choices=[(BALANCE, "Account balance"), (PAY_NOW, "Pay now by card (Timed only)")],
        initial=BALANCE,
        widget=forms.RadioSelect,
    )
    resume_after_top_up = forms.BooleanField(
        required=False, label="If the balance runs out, resume automatically after my next top-up"
    )

    def __init__(self, *args: Any, model: YoloModel, resuming: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        self.resuming = resuming
        self.fields["epochs"].initial = max(model.target_epochs, model.epochs_completed + 1)
        self.fields["instance_type"].initial = InstanceType.objects.filter(active=True).first()

    @property
    def minimum_epochs(self) -> int:
        return self.model.epochs_completed + 1

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        mode = cleaned.get("mode")
        if mode == TrainingSession.Mode.EPOCHS:
            epochs = cleaned.get("epochs")
            if epochs is None:
                self.add_error("epochs", "Enter how many epochs to train.")
            elif epochs < self.minimum_epochs:
                self.add_error(
                    "epochs",
                    f"The model has completed {self.model.epochs_completed} epochs already; "
                    f"the target must be at least {self.minimum_epochs}.",
                )
            if cleaned.get("payment") == self.PAY_NOW:
                self.add_error("payment", "Pay now is for Timed training; Epochs mode bills your balance per epoch.")
        elif mode == TrainingSession.Mode.TIMED:
            seconds = self.time_budget_seconds(cleaned)
            if not MIN_TIMED_SECONDS <= seconds <= MAX_TIMED_SECONDS:
                self.add_error("hours", "Choose between 5 minutes and 7 days.")
        return cleaned

    @staticmethod
    def time_budget_seconds(cleaned: dict[str, Any]) -> int:
        return (
            (cleaned.get("days") or 0) * 86_400
            + (cleaned.get("hours") or 0) * 3_600
            + (cleaned.get("minutes") or 0) * 60
        )

    def start_request(self) -> StartRequest:
        cleaned = self.cleaned_data
        timed = cleaned["mode"] == TrainingSession.Mode.TIMED
        return StartRequest(
            instance_type=cleaned["instance_type"],
            mode=cleaned["mode"],
            target_epochs=None if timed else cleaned["epochs"],
            time_budget_seconds=self.time_budget_seconds(cleaned) if timed else None,
            resume_after_top_up=bool(cleaned.get("resume_after_top_up")) and not timed,
        )

    @property
    def pays_now(self) -> bool:
        return self.cleaned_data.get("payment") == self.PAY_NOW


class PayNowForm(forms.Form):
    """Pay Now's own page: a Timed session of whole quarter hours, paid by card."""

    instance_type = forms.ModelChoiceField(
        queryset=InstanceType.objects.filter(active=True), to_field_name="slug", empty_label=None
    )
    hours = forms.DecimalField(min_value=Decimal("0.25"), max_value=Decimal(72), decimal_places=2, max_digits=5)
    target_epochs = forms.IntegerField(required=False, min_value=1, max_value=10_000)

    def clean_hours(self) -> Decimal:
        hours: Decimal = self.cleaned_data["hours"]
        if (hours * 4) != (hours * 4).to_integral_value():
            raise forms.ValidationError("Choose whole quarter hours (0.25, 0.5, 0.75, ...).")
        return hours

    def start_request(self) -> StartRequest:
        cleaned = self.cleaned_data
        return StartRequest(
            instance_type=cleaned["instance_type"],
            mode=TrainingSession.Mode.TIMED,
            target_epochs=cleaned["target_epochs"],
            time_budget_seconds=int(cleaned["hours"] * 3600),
        )
