"""Staff views of accounts and the ledger. Nothing here edits a balance or a line:
balances change only through the "Adjust balance" form, which appends an
``adjustment`` line naming the staff user and the reason. Violations found by the
last ledger check (``billing/invariants.py``) are shown as errors on the accounts.

Plans are edited here. Subscriptions and invoices are Stripe's (read-only: only
webhooks and reconciliation write them); a plan is given by hand with "Grant plan",
which appends a ``PlanGrant`` naming the staff user and the reason (read-only too)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from billing import services
from billing.forms import AdjustBalanceForm
from billing.models import Account, Hold, Invoice, LedgerLine, LedgerViolation, Plan, PlanGrant, Subscription
from billing.money import format_usd
from billing.plans.grants import GrantRefused, grant_plan
from hubsite.models import User

LEDGER_FIELDS = (
    "created_at",
    "kind",
    "amount_display",
    "balance_after_display",
    "session",
    "epoch",
    "reference",
    "reason",
    "created_by",
)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class ReadOnlyMixin:
    """No add, change or delete for anyone, superusers included; viewing stays."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LedgerDisplayMixin:
    @admin.display(description="amount", ordering="amount_micros")
    def amount_display(self, line: LedgerLine) -> str:
        return format_usd(line.amount_micros, 6)

    @admin.display(description="balance after", ordering="balance_after_micros")
    def balance_after_display(self, line: LedgerLine) -> str:
        return format_usd(line.balance_after_micros, 6)


class LedgerLineInline(ReadOnlyMixin, LedgerDisplayMixin, admin.TabularInline[LedgerLine, Account]):
    model = LedgerLine
    extra = 0
    can_delete = False
    fields = LEDGER_FIELDS
    readonly_fields = LEDGER_FIELDS
    ordering = ("-created_at", "-id")
    verbose_name_plural = "ledger (newest first)"


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin[Account]):
    list_display = (
        "user",
        "balance_display",
        "held_display",
        "concurrent_session_limit",
        "updated_at",
        "ledger_check_display",
    )
    search_fields = ("user__email",)
    list_select_related = ("user",)
    fields = (
        "user",
        "balance_display",
        "held_display",
        "adjust_link",
        "concurrent_session_limit",
        "stripe_customer_id",
        "grant_link",
    )
    readonly_fields = ("user", "balance_display", "held_display", "adjust_link", "stripe_customer_id", "grant_link")
    inlines = (LedgerLineInline,)
    actions = ("adjust_balance", "grant_plan_action")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # every user gets an account when signing up

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        return super().get_queryset(request).annotate(violation_count=Count("ledger_violations"))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "GET":
            found = LedgerViolation.objects.aggregate(violations=Count("pk"), accounts=Count("account", distinct=True))
            if found["violations"]:
                url = reverse("admin:billing_ledgerviolation_changelist")
                self.message_user(
                    request,
                    format_html(
                        'The last ledger check found {} on {}. <a href="{}">See them</a>.',
                        _count(found["violations"], "violation"),
                        _count(found["accounts"], "account"),
                        url,
                    ),
                    messages.ERROR,
                )
        return super().changelist_view(request, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "GET" and object_id.isdigit():
            for violation in LedgerViolation.objects.filter(account_id=int(object_id)):
                self.message_user(
                    request,
                    f"Ledger check {violation.found_at:%Y-%m-%d %H:%M} UTC: {violation.detail} "
                    f"(rule: {violation.get_rule_display()})",
                    messages.ERROR,
                )
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="ledger check", ordering="violation_count")
    def ledger_check_display(self, account: Account) -> str:
        count: int = getattr(account, "violation_count", 0)
        if not count:
            return "none found"
        url = reverse("admin:billing_ledgerviolation_changelist") + f"?account__id__exact={account.pk}"
        return format_html('<a href="{}" style="color: var(--error-fg)">{}</a>', url, _count(count, "violation"))

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        return False

    @admin.display(description="balance", ordering="balance_micros")
    def balance_display(self, account: Account) -> str:
        return format_usd(account.balance_micros, 6)

    @admin.display(description="held", ordering="held_micros")
    def held_display(self, account: Account) -> str:
        return format_usd(account.held_micros, 6)

    @admin.display(description="adjust")
    def adjust_link(self, account: Account) -> str:
        url = reverse("admin:billing_account_adjust", args=[account.pk])
        return format_html('<a class="button" href="{}">Adjust balance</a>', url)

    @admin.action(description="Adjust balance (one account)")
    def adjust_balance(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one account to adjust.", messages.WARNING)
            return None
        account = queryset.get()
        return HttpResponseRedirect(reverse("admin:billing_account_adjust", args=[account.pk]))

    @admin.display(description="plan")
    def grant_link(self, account: Account) -> str:
        url = reverse("admin:billing_account_grant_plan", args=[account.pk])
        return format_html('<a class="button" href="{}">Grant plan</a>', url)

    @admin.action(description="Grant plan (one account)")
    def grant_plan_action(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one account to grant a plan to.", messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:billing_account_grant_plan", args=[queryset.get().pk]))

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<int:account_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="billing_account_adjust",
            ),
            path(
                "<int:account_id>/grant-plan/",
                self.admin_site.admin_view(self.grant_view),
                name="billing_account_grant_plan",
            ),
        ]
        return [*custom, *super().get_urls()]

    def grant_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        """Give the account a plan by hand (or end the grant): one new PlanGrant row."""
        account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        form = GrantPlanForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            staff = request.user if isinstance(request.user, User) else None
            try:
                grant = grant_plan(
                    account, form.cleaned_data["plan"], form.cleaned_data["until"], form.cleaned_data["reason"], staff
                )
            except GrantRefused as error:
                form.add_error(None, str(error))
            else:
                what = f"Granted {grant.plan} to {account.user}" if grant.plan else f"Ended the grant of {account.user}"
                until = f" until {grant.until:%Y-%m-%d %H:%M} UTC" if grant.until else ""
                self.message_user(request, f"{what}{until}.", messages.SUCCESS)
                return redirect("admin:billing_account_change", account.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Grant a plan to {account.user}",
            "account": account,
            "form": form,
            "grants": PlanGrant.objects.filter(account=account).select_related("plan", "granted_by")[:20],
        }
        return TemplateResponse(request, "billing/admin/grant_plan.html", context)

    def adjust_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        form = AdjustBalanceForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            self._apply_adjustment(request, account, form)
            return redirect("admin:billing_account_change", account.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Adjust the balance of {account.user}",
            "account": account,
            "form": form,
            "balance": format_usd(account.balance_micros, 6),
        }
        return TemplateResponse(request, "billing/admin/adjust_balance.html", context)

    def _apply_adjustment(self, request: HttpRequest, account: Account, form: AdjustBalanceForm) -> None:
        """Append the form's adjustment once: its token is the line's reference, and
        ``services.adjust`` returns the existing line for a reference it has seen."""
        reference = form.reference()
        earlier = LedgerLine.objects.filter(account=account, kind=LedgerLine.Kind.ADJUSTMENT, reference=reference)
        if line := earlier.first():
            self.message_user(
                request,
                f"This form was already submitted: {format_usd(line.amount_micros, 6)} was appended at "
                f"{line.created_at:%Y-%m-%d %H:%M:%S} UTC. Nothing changed; open Adjust balance again "
                "for another adjustment.",
                messages.WARNING,
            )
            return
        staff = request.user if isinstance(request.user, User) else None
        line = services.adjust(
            account.pk,
            form.cleaned_data["amount"],
            staff_user=staff,
            reason=form.cleaned_data["reason"],
            reference=reference,
        )
        self.message_user(
            request,
            f"Adjusted {account.user} by {format_usd(line.amount_micros, 6)}; "
            f"the balance is now {format_usd(line.balance_after_micros, 6)}.",
            messages.SUCCESS,
        )


class GrantPlanForm(forms.Form):
    """Staff: the plan to give (empty ends the grant in force), until when, and why."""

    plan = forms.ModelChoiceField(
        queryset=Plan.objects.all(), required=False, empty_label="(none: end the grant in force)"
    )
    until = forms.DateTimeField(required=False, help_text="UTC, e.g. 2027-01-31 00:00. Empty: until revoked.")
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(LedgerLine)
class LedgerLineAdmin(ReadOnlyMixin, LedgerDisplayMixin, admin.ModelAdmin[LedgerLine]):
    list_display = ("created_at", "account", "kind", "amount_display", "balance_after_display", "reference")
    list_filter = ("kind",)
    search_fields = ("account__user__email", "reference", "reason")
    list_select_related = ("account__user",)
    fields = ("account", *LEDGER_FIELDS, "duration_ms", "price_per_hour_micros")
    readonly_fields = fields
    date_hierarchy = "created_at"


@admin.register(Hold)
class HoldAdmin(ReadOnlyMixin, admin.ModelAdmin[Hold]):
    list_display = ("created_at", "account", "session", "epoch", "amount_micros", "status", "closed_at")
    list_filter = ("status",)
    search_fields = ("account__user__email",)
    list_select_related = ("account__user",)
    readonly_fields = ("account", "session", "epoch", "amount_micros", "status", "created_at", "closed_at")


@admin.register(LedgerViolation)
class LedgerViolationAdmin(ReadOnlyMixin, admin.ModelAdmin[LedgerViolation]):
    """What the last ledger check found; each check replaces the list."""

    list_display = ("found_at", "account", "rule", "detail")
    list_filter = ("rule",)
    search_fields = ("account__user__email",)
    list_select_related = ("account__user",)
    readonly_fields = ("found_at", "account", "rule", "detail")


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin[Plan]):
    """Plans are data: staff change prices and limits here (a new price wants a new
    Stripe Price: clear ``stripe_price_id`` or set the new one)."""

    list_display = (
        "name",
        "slug",
        "monthly_price_cents",
        "allows_cloud_training",
        "concurrent_sessions",
        "storage_quota_bytes",
        "is_default",
        "is_public",
        "display_order",
    )
    list_editable = ("display_order", "is_public")
    filter_horizontal = ("instance_types",)
    readonly_fields = ("created_at", "updated_at")

    def has_delete_permission(self, request: HttpRequest, obj: Plan | None = None) -> bool:
        return False  # subscriptions and grants refer to it; hide it with is_public instead


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyMixin, admin.ModelAdmin[Subscription]):
    list_display = ("account", "plan", "status", "current_period_end", "cancel_at_period_end", "past_due_since")
    list_filter = ("status", "plan")
    search_fields = ("account__user__email", "stripe_subscription_id", "stripe_customer_id")
    list_select_related = ("account__user", "plan")
    readonly_fields = (
        "account",
        "plan",
        "stripe_subscription_id",
        "stripe_customer_id",
        "status",
        "current_period_end",
        "cancel_at_period_end",
        "trial_end",
        "past_due_since",
        "ended_at",
        "last_event_created",
        "created_at",
        "updated_at",
    )


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyMixin, admin.ModelAdmin[Invoice]):
    list_display = ("stripe_created", "account", "status", "amount_due_cents", "amount_paid_cents", "paid_at")
    list_filter = ("status",)
    search_fields = ("account__user__email", "stripe_invoice_id")
    list_select_related = ("account__user",)
    readonly_fields = (
        "account",
        "subscription",
        "stripe_invoice_id",
        "status",
        "amount_due_cents",
        "amount_paid_cents",
        "currency",
        "hosted_invoice_url",
        "period_start",
        "period_end",
        "stripe_created",
        "paid_at",
    )


@admin.register(PlanGrant)
class PlanGrantAdmin(ReadOnlyMixin, admin.ModelAdmin[PlanGrant]):
    """The audit of plans given by hand (add one with "Grant plan" on the account)."""

    list_display = ("created_at", "account", "plan", "until", "granted_by", "reason")
    search_fields = ("account__user__email", "reason")
    list_select_related = ("account__user", "plan", "granted_by")
    readonly_fields = ("account", "plan", "until", "reason", "granted_by", "created_at")
