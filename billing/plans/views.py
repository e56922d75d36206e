"""The Plans page: what each plan allows and costs, the user's own standing, Upgrade and Manage.

Upgrade and Manage only send the user to Stripe (Checkout, the customer portal): the
subscription itself changes from Stripe's verified webhooks and reconciliation."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from billing import services
from billing.models import Account, CheckoutSession, Invoice, Plan, Subscription
from billing.money import format_usd
from billing.plans.standing import LIVE_STATUSES, Standing, offered_plans, plans_enabled, standing_of
from billing.stripe import subscriptions
from billing.stripe.checkout import CheckoutUnavailable
from hubsite.http import AuthenticatedRequest, owned_or_404


@dataclass(frozen=True)
class PlanCard:
    """One plan as the Plans page shows it."""

    plan: Plan
    price: str
    storage: str
    instance_types: str
    current: bool
    can_upgrade: bool


def _card(plan: Plan, standing: Standing, subscribed: bool) -> PlanCard:
    names = [instance_type.name for instance_type in plan.instance_types.all()]
    quota = plan.storage_quota_bytes
    return PlanCard(
        plan=plan,
        price="No monthly fee" if not plan.is_paid else f"{format_usd(plan.monthly_price_cents * 10_000)} / month",
        storage="unlimited" if quota is None else str(filesizeformat(quota)),
        instance_types=", ".join(names) if names else "every instance type",
        current=standing.plan is not None and standing.plan.pk == plan.pk,
        can_upgrade=standing.enforced and plan.is_paid and not subscribed and standing.plan != plan,
    )


def live_subscription(account: Account) -> Subscription | None:
    """The account's subscription that Stripe still bills (trial, active, overdue), if any."""
    return (
        Subscription.objects.filter(account=account, status__in=LIVE_STATUSES, ended_at__isnull=True)
        .select_related("plan")
        .first()
    )


def _render_index(request: AuthenticatedRequest, error: str = "", status: int = 200) -> HttpResponse:
    account = services.account_for(request.user)
    standing = standing_of(account)
    subscription = live_subscription(account)
    open_invoice = (
        Invoice.objects.filter(account=account)
        .exclude(status__in=["paid", "void"])
        .exclude(hosted_invoice_url="")
        .first()
        if standing.payment_overdue
        else None
    )
    context = {
        "standing": standing,
        "cards": [_card(plan, standing, subscription is not None) for plan in offered_plans()],
        "subscription": standing.subscription or subscription,
        "can_manage": bool(account.stripe_customer_id),
        "open_invoice": open_invoice,
        "error": error,
    }
    return render(request, "billing/plans/index.html", context, status=status)


@require_GET
def index(request: AuthenticatedRequest) -> HttpResponse:
    return _render_index(request)


@require_POST
def upgrade(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """Open a Stripe Checkout (subscription mode) for the plan, after every check."""
    plan = get_object_or_404(Plan, slug=slug)
    if not plans_enabled():
        return _render_index(
            request, "Plans are off on this site: everyone may train, so there is nothing to buy.", 400
        )
    if not plan.is_public or not plan.is_paid:
        return _render_index(request, f"{plan.name} cannot be bought here.", 400)
    account = services.account_for(request.user)
    current = live_subscription(account)
    if current is not None:
        return _render_index(
            request,
            f"You already subscribe to {current.plan.name}: use “Manage or cancel” to change or cancel it.",
            409,
        )
    try:
        record = subscriptions.create_subscription_checkout(request.user, plan)
    except CheckoutUnavailable as error:
        return _render_index(request, str(error), 503)
    except subscriptions.UpgradeInProgress as error:
        return _render_index(request, str(error), 409)
    return _redirect(request, record.url)


@require_POST
def manage(request: AuthenticatedRequest) -> HttpResponse:
    """Send the user to Stripe's customer portal (change card, cancel, invoices)."""
    if not plans_enabled():
        return _render_index(request, "Plans are off on this site: there is no subscription to manage.", 400)
    try:
        url = subscriptions.portal_url(services.account_for(request.user))
    except subscriptions.PortalUnavailable as error:
        status = 503 if services.account_for(request.user).stripe_customer_id else 400
        return _render_index(request, str(error), status)
    return _redirect(request, url)


def _redirect(request: AuthenticatedRequest, url: str) -> HttpResponse:
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url, status=303)


@require_GET
def upgrade_success(request: AuthenticatedRequest, checkout_id: int) -> HttpResponse:
    """Back from Stripe: "starting your subscription..." until a webhook (or
    reconciliation) makes it live (htmx polls the status fragment)."""
    record = owned_or_404(
        CheckoutSession.objects.select_related("plan", "account"),
        request,
        owner_field="account__user",
        pk=checkout_id,
        purpose=CheckoutSession.Purpose.SUBSCRIPTION,
    )
    if record.plan is None:
        raise Http404
    subscription = (
        Subscription.objects.filter(
            account=record.account, stripe_subscription_id=record.stripe_subscription_id, status__in=LIVE_STATUSES
        ).first()
        if record.stripe_subscription_id
        else None
    )
    context = {
        "record": record,
        "subscription": subscription,
        "pending": subscription is None
        and record.status in (CheckoutSession.Status.OPEN, CheckoutSession.Status.COMPLETE),
    }
    if request.htmx:
        if context["pending"]:
            return render(request, "billing/plans/success.html#status", context)
        return HttpResponseStopPolling(render_to_string("billing/plans/success.html#status", context, request))
    return render(request, "billing/plans/success.html", context)
