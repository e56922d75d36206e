"""Our side of Stripe: one row per Checkout Session we create, one per webhook event.

A ``CheckoutSession`` is created before Stripe's session (its id goes into Stripe's
metadata and ``client_reference_id``), so every Stripe session we ever credit maps
back to exactly one row, one account and one amount. The balance itself changes
only through billing.services, from billing/stripe/webhooks.py.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.db.models import Q


class CheckoutSession(models.Model):
    class Purpose(models.TextChoices):
        TOP_UP = "top_up", "Top-up"
        TIMED_PAY_NOW = "timed_pay_now", "Timed training, paid now"

    class Status(models.TextChoices):
        OPEN = "open", "Open"  # waiting for the customer on Stripe's page
        COMPLETE = "complete", "Complete"  # paid and credited (exactly once)
        EXPIRED = "expired", "Expired"  # abandoned, expired or cancelled: nothing paid
        FAILED = "failed", "Failed"  # Stripe refused to create the session

    class DisputeStatus(models.TextChoices):
        NONE = "", "None"
        OPEN = "open", "Open"  # any of Stripe's open statuses, inquiries included: the amount is frozen
        WON = "won", "Won"  # won, or an inquiry closed without a chargeback: the frozen amount is returned
        LOST = "lost", "Lost"  # the bank took the money back: the frozen amount stays taken

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)  # the idempotency key's root
    account = models.ForeignKey("billing.Account", on_delete=models.PROTECT, related_name="checkout_sessions")
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.TOP_UP)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    stripe_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    url = models.URLField(max_length=2000, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Cents refunded in Stripe so far (charge.refunded carries the running total).
    refunded_cents = models.PositiveIntegerField(default=0)
    # The payment's dispute (Stripe allows one per charge), as the last event told us.
    stripe_dispute_id = models.CharField(max_length=255, blank=True)
    dispute_status = models.CharField(max_length=4, choices=DisputeStatus.choices, blank=True, default="")
    disputed_cents = models.PositiveIntegerField(default=0)
    # Pay Now: what to start once paid. The session exists only after payment.
    model = models.ForeignKey("training.YoloModel", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    instance_type = models.ForeignKey(
        "training.InstanceType", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    time_budget_seconds = models.PositiveIntegerField(null=True, blank=True)
    target_epochs = models.PositiveIntegerField(null=True, blank=True)
    training_session = models.ForeignKey(
        "training.TrainingSession", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Why a paid Pay Now could not start (the money stays on the balance), or why
    # creating the session failed.
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="checkout_amount_positive"),
            models.CheckConstraint(
                condition=~Q(purpose="timed_pay_now") | Q(time_budget_seconds__gt=0),
                name="checkout_pay_now_has_time_budget",
            ),
        ]

    def __str__(self) -> str:
        return f"checkout {self.pk} ({self.get_purpose_display()}, {self.amount_cents} cents, {self.status})"

    @property
    def paid_session_id(self) -> int | None:
        """The Timed session this payment prepaid (Pay Now), or None: a top-up, or a
        Pay Now whose session could not start (its money stayed on the balance)."""
        if self.purpose != self.Purpose.TIMED_PAY_NOW:
            return None
        return self.training_session_id

    @property
    def dispute_takes_money(self) -> bool:
        """An open or lost dispute: its amount is taken from what the payment bought."""
        return self.dispute_status in (self.DisputeStatus.OPEN, self.DisputeStatus.LOST)

    def refund_reference(self) -> str:
        """The ledger reference of the take-back for the refunds up to ``refunded_cents``."""
        return f"stripe refund {self.stripe_session_id} total {self.refunded_cents}"

    def dispute_reference(self) -> str:
        return f"stripe dispute {self.stripe_dispute_id}"


class StripeEvent(models.Model):
    """Every verified webhook event, under Stripe's own unique id."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"  # not a type we handle, or refused (error says why)
        FAILED = "failed", "Failed"  # processing raised; Stripe retries, and so may we

    stripe_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    api_version = models.CharField(max_length=40, blank=True)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id} ({self.status})"
