"""Accounts, the append-only ledger, and the holds that reserve an epoch's cost.

Amounts are integers in micro-dollars (1_000_000 = US$1.00). Nothing here changes
a balance: every change goes through ``billing/services.py``, which appends a
``LedgerLine`` in the same transaction, with the account row locked. The database
itself refuses a negative balance and a second charge for one session and epoch.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q


class Account(models.Model):
    """A user's prepaid balance and limits. ``held_micros`` is the sum of the open
    holds; the *available* balance is ``balance_micros - held_micros``."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="billing_account")
    balance_micros = models.BigIntegerField(default=0)
    held_micros = models.BigIntegerField(default=0)
    concurrent_session_limit = models.PositiveSmallIntegerField(
        default=1,
        help_text="How many training sessions this account may run at the same time (when plans are off; "
        "with plans on, the plan's limit applies).",
    )
    # The user's own limit on what training may spend in a calendar month (UTC); None: no limit.
    # Enforced under this row's lock by every hold and prepayment (docs/billing.md, "Spending caps").
    monthly_spending_cap_micros = models.PositiveBigIntegerField(null=True, blank=True)
    # The Stripe Customer of this account's subscriptions, created on the first upgrade.
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(balance_micros__gte=0), name="account_balance_not_negative"),
            models.CheckConstraint(condition=Q(held_micros__gte=0), name="account_held_not_negative"),
        ]

    def __str__(self) -> str:
        return f"account of {self.user}"

    @property
    def available_micros(self) -> int:
        """What new holds and prepayments may use (never below zero)."""
        return max(0, self.balance_micros - self.held_micros)


class LedgerLine(models.Model):
    """One change of a balance. Append-only: nothing updates or deletes a line.

    ``amount_micros`` is signed (credits positive, charges negative) and
    ``balance_after_micros`` is the account's balance right after this line, so the
    lines of an account, in order, are its running balance."""

    class Kind(models.TextChoices):
        TOP_UP = "top_up", "Top-up"
        EPOCH_CHARGE = "epoch_charge", "Epoch charge"
        TIMED_PREPAYMENT = "timed_prepayment", "Timed prepayment"
        TIMED_REFUND = "timed_refund", "Timed refund"
        ADJUSTMENT = "adjustment", "Adjustment"
        WRITE_OFF = "write_off", "Write-off"
        # Stripe refunds and disputes of a card payment (docs/stripe.md, "Refunds and disputes").
        PAYMENT_REFUND = "payment_refund", "Refunded to card"
        DISPUTE = "dispute", "Disputed payment"
        DISPUTE_REVERSAL = "dispute_reversal", "Dispute closed: returned"

    # No index of its own: the (account, created_at, id) index below serves it.
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="ledger_lines", db_index=False)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount_micros = models.BigIntegerField()
    balance_after_micros = models.BigIntegerField()
    # The session (and epoch) a line pays for. SET_NULL keeps the money history when a
    # model is deleted; ``reference`` still names the session and epoch in words.
    session = models.ForeignKey(
        "training.TrainingSession", on_delete=models.SET_NULL, null=True, blank=True, related_name="ledger_lines"
    )
    epoch = models.PositiveIntegerField(null=True, blank=True)
    # Epoch charges: billed wall time of the epoch, and the hourly price used.
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    price_per_hour_micros = models.PositiveBigIntegerField(null=True, blank=True)
    # Stripe object id, "session 12 epoch 3", "demo-credit", ... (see docs/billing.md)
    reference = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["created_at", "id"]
        indexes: ClassVar = [models.Index(fields=["account", "created_at", "id"], name="ledger_account_time")]
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(balance_after_micros__gte=0), name="ledger_balance_after_not_negative"),
            models.UniqueConstraint(
                fields=["session", "epoch"],
                condition=Q(kind="epoch_charge"),
                name="one_charge_per_session_epoch",
            ),
            models.UniqueConstraint(
                fields=["session", "epoch"],
                condition=Q(kind="write_off", epoch__isnull=False),
                name="one_write_off_per_session_epoch",
            ),
            models.UniqueConstraint(
                fields=["session"], condition=Q(kind="timed_prepayment"), name="one_prepayment_per_session"
            ),
            models.UniqueConstraint(
                fields=["session"], condition=Q(kind="timed_refund"), name="one_refund_per_session"
            ),
            models.UniqueConstraint(fields=["reference"], condition=Q(kind="top_up"), name="one_top_up_per_reference"),
            models.UniqueConstraint(
                fields=["kind", "reference"],
                condition=Q(kind__in=["payment_refund", "dispute", "dispute_reversal"]),
                name="one_stripe_take_back_per_reference",
            ),
            models.UniqueConstraint(
                fields=["account", "reference"],
                condition=Q(kind="adjustment") & ~Q(reference=""),
                name="one_adjustment_per_account_reference",
            ),
            # Charges, prepayments and what a Stripe refund or dispute takes back take
            # money; top-ups, refunds, write-offs and a won dispute give it back.
            models.CheckConstraint(
                condition=~Q(kind__in=["epoch_charge", "timed_prepayment", "payment_refund", "dispute"])
                | Q(amount_micros__lte=0),
                name="ledger_debits_not_positive",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=["top_up", "timed_refund", "write_off", "dispute_reversal"])
                | Q(amount_micros__gte=0),
                name="ledger_credits_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount_micros} on {self.account_id}"


class Hold(models.Model):
    """A reservation of an epoch's expected cost, taken before the epoch starts.

    Captured (at the actual cost) when the epoch completes, released when the
    session stops, pauses, fails or crashes before completing it."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CAPTURED = "captured", "Captured"
        RELEASED = "released", "Released"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="holds")
    # No index of its own: the unique (session, epoch) index serves it.
    session = models.ForeignKey(
        "training.TrainingSession", on_delete=models.CASCADE, related_name="holds", db_index=False
    )
    epoch = models.PositiveIntegerField()
    amount_micros = models.BigIntegerField()
    # Not indexed, so capturing or releasing a hold is a cheap in-place (HOT) update.
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["created_at", "id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["session", "epoch"], name="one_hold_per_session_epoch"),
            models.CheckConstraint(condition=Q(amount_micros__gte=0), name="hold_amount_not_negative"),
        ]

    def __str__(self) -> str:
        return f"hold {self.amount_micros} for session {self.session_id} epoch {self.epoch}"


class LedgerViolation(models.Model):
    """A broken ledger invariant found by the last check (``billing/invariants.py``).

    Each check replaces every row, so the table holds exactly what the last check
    found; staff see it in the admin. Nothing here repairs money."""

    class Rule(models.TextChoices):
        BALANCE_IS_SUM_OF_LINES = "balance_sum", "balance = sum of its ledger lines"
        BALANCE_IS_LAST_LINE = "balance_last_line", "balance = the last line's balance after"
        HELD_IS_OPEN_HOLDS = "held_open_holds", "held = sum of its open holds"
        NO_OPEN_HOLD_ON_ENDED_SESSION = "open_hold_ended", "no open hold on an ended session"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="ledger_violations")
    rule = models.CharField(max_length=20, choices=Rule.choices)
    detail = models.CharField(max_length=500)
    found_at = models.DateTimeField()

    class Meta:
        ordering: ClassVar = ["account_id", "rule", "id"]

    def __str__(self) -> str:
        return f"{self.get_rule_display()} broken on {self.account_id}"


# --- Stripe's records (written by billing.stripe) ---------------------------------------------
# A CheckoutSession row is created before Stripe's session (its id goes into Stripe's metadata
# and client_reference_id), so every Stripe session we credit maps back to one row, one
# account and one amount. A StripeEvent row per webhook event makes processing exactly-once.


class CheckoutSession(models.Model):
    class Purpose(models.TextChoices):
        TOP_UP = "top_up", "Top-up"
        TIMED_PAY_NOW = "timed_pay_now", "Timed training, paid now"
        SUBSCRIPTION = "subscription", "Plan subscription"

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
    # Subscription: the plan bought, and Stripe's subscription once the Checkout completes.
    plan = models.ForeignKey("billing.Plan", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    stripe_subscription_id = models.CharField(max_length=255, blank=True)
    # Stripe's receipt of the card payment (a charge's receipt_url), for the Billing page.
    receipt_url = models.URLField(max_length=2000, blank=True)
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


# --- Plans and subscriptions (billing/plans.py, billing/stripe/subscriptions.py) --------------


class Plan(models.Model):
    """What a user may do, and its monthly price. Staff edit plans in the admin; with
    ``PLANS_ENABLED`` off none applies and everyone may train."""

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=60)
    description = models.CharField(max_length=300, blank=True)
    monthly_price_cents = models.PositiveIntegerField(default=0, help_text="0 for a free plan.")
    currency = models.CharField(max_length=3, default="usd")
    allows_cloud_training = models.BooleanField(default=False)
    concurrent_sessions = models.PositiveSmallIntegerField(
        default=1, help_text="Cloud Training sessions that may run at the same time."
    )
    storage_quota_bytes = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Datasets and weights stored, in bytes; empty: unlimited."
    )
    instance_types = models.ManyToManyField(
        "training.InstanceType", blank=True, related_name="+", help_text="Empty: every instance type offered."
    )
    trial_days = models.PositiveSmallIntegerField(default=0, help_text="Free days before the first payment.")
    is_default = models.BooleanField(
        default=False, help_text="The plan of every user without a subscription or a grant (exactly one)."
    )
    is_public = models.BooleanField(default=True, help_text="Offered on the Plans page.")
    display_order = models.PositiveSmallIntegerField(default=0)
    # Stripe's recurring Price for this plan: set by staff for real Stripe, or created on
    # the first upgrade (the emulator). Changing the price wants a new Stripe Price.
    stripe_price_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["display_order", "monthly_price_cents", "id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_plan"),
            models.CheckConstraint(
                condition=Q(is_default=False) | Q(monthly_price_cents=0), name="default_plan_is_free"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_paid(self) -> bool:
        return self.monthly_price_cents > 0


class Subscription(models.Model):
    """Our copy of a Stripe subscription. Written only from verified webhook events and
    reconciliation (billing/stripe/subscriptions.py), never from a user's request."""

    class Status(models.TextChoices):
        INCOMPLETE = "incomplete", "Incomplete"
        INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete, expired"
        TRIALING = "trialing", "Trial"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Payment overdue"
        UNPAID = "unpaid", "Unpaid"
        CANCELED = "canceled", "Canceled"
        PAUSED = "paused", "Paused"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    stripe_subscription_id = models.CharField(max_length=255, unique=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, db_index=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    trial_end = models.DateTimeField(null=True, blank=True)
    # When it first became past_due (cleared when paid): the grace period counts from here.
    past_due_since = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Stripe's ``created`` of the event last applied: an older event never overwrites a newer state.
    last_event_created = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.plan} subscription {self.stripe_subscription_id} ({self.status})"


class PlanGrant(models.Model):
    """A plan given by hand by staff (append-only: the newest row of an account is in
    force; a row without a plan ends the grant). Overrides any subscription."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="plan_grants")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    until = models.DateTimeField(null=True, blank=True, help_text="Empty: until revoked.")
    reason = models.CharField(max_length=500)
    # The staff user; None for a management command (seed_demo) or a deleted staff account.
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.plan or 'no plan'} granted to {self.account_id}"


class Invoice(models.Model):
    """A subscription invoice as Stripe last told us (webhooks), with its hosted page."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(
        Subscription, on_delete=models.SET_NULL, null=True, blank=True, related_name="invoices"
    )
    stripe_invoice_id = models.CharField(max_length=255, unique=True)
    status = models.CharField(max_length=20)  # Stripe's: draft, open, paid, uncollectible, void
    amount_due_cents = models.PositiveIntegerField(default=0)
    amount_paid_cents = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    hosted_invoice_url = models.URLField(max_length=2000, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    stripe_created = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-stripe_created", "-id"]

    def __str__(self) -> str:
        return f"invoice {self.stripe_invoice_id} ({self.status})"
