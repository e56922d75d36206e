"""The top-up page, the Checkout return pages, and Stripe's webhook endpoint.

(Pay Now's page is training's: ``training.views.train.pay_now``.)
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal, InvalidOperation
from typing import Any

import stripe
from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from billing import services as billing
from billing.models import CheckoutSession
from billing.money import format_usd
from billing.stripe import checkout, webhooks
from hubsite.http import AuthenticatedRequest, owned_or_404

logger = logging.getLogger(__name__)


def _dollars(cents: int) -> str:
    return format_usd(cents * 10_000)


class TopUpForm(forms.Form):
    """A preset button (``preset``, in cents) or a custom amount in dollars (``custom``)."""

    preset = forms.IntegerField(required=False, widget=forms.HiddenInput)
    custom = forms.CharField(required=False, max_length=12, label="Custom amount (US$)")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        low, high = settings.STRIPE_TOP_UP_MIN_CENTS, settings.STRIPE_TOP_UP_MAX_CENTS
        preset, custom = data.get("preset"), (data.get("custom") or "").strip().lstrip("$").replace(",", "")
        if preset is not None:
            if preset not in settings.STRIPE_TOP_UP_PRESETS_CENTS:
                raise forms.ValidationError("Choose one of the amounts offered.")
            data["amount_cents"] = preset
            return data
        if not custom:
            raise forms.ValidationError("Choose an amount or enter one.")
        try:
            dollars = Decimal(custom)
        except InvalidOperation:
            self.add_error("custom", "Enter an amount in dollars, like 25 or 12.50.")
            return data
        cents = dollars * 100
        if not dollars.is_finite() or cents != cents.to_integral_value():
            self.add_error("custom", "Enter an amount in dollars and cents, like 12.50.")
            return data
        if not low <= int(cents) <= high:
            self.add_error("custom", f"Enter an amount from {_dollars(low)} to {_dollars(high)}.")
            return data
        data["amount_cents"] = int(cents)
        return data


def _top_up_context(form: TopUpForm, error: str = "") -> dict[str, object]:
    return {
        "form": form,
        "presets": [(cents, _dollars(cents)) for cents in settings.STRIPE_TOP_UP_PRESETS_CENTS],
        "min_display": _dollars(settings.STRIPE_TOP_UP_MIN_CENTS),
        "max_display": _dollars(settings.STRIPE_TOP_UP_MAX_CENTS),
        "error": error,
    }


def _to_checkout(request: AuthenticatedRequest, record: CheckoutSession) -> HttpResponse:
    if request.htmx:
        return HttpResponseClientRedirect(record.url)
    return HttpResponseRedirect(record.url, status=303)


@require_http_methods(["GET", "POST"])
def top_up(request: AuthenticatedRequest) -> HttpResponse:
    """Presets and a custom amount; POST opens a Stripe Checkout and sends the user there."""
    if request.method == "GET":
        return render(request, "billing/stripe/top_up.html", _top_up_context(TopUpForm()))
    form = TopUpForm(request.POST)
    if not form.is_valid():
        return render(request, "billing/stripe/top_up.html", _top_up_context(form), status=400)
    try:
        record = checkout.create_top_up_checkout(request.user, form.cleaned_data["amount_cents"])
    except checkout.CheckoutUnavailable as error:
        return render(request, "billing/stripe/top_up.html", _top_up_context(form, str(error)), status=503)
    return _to_checkout(request, record)


def _checkout_or_404(request: AuthenticatedRequest, checkout_id: int) -> CheckoutSession:
    return owned_or_404(
        CheckoutSession.objects.select_related("account", "training_session", "model"),
        request,
        owner_field="account__user",
        pk=checkout_id,
    )


@require_GET
def checkout_success(request: AuthenticatedRequest, checkout_id: int) -> HttpResponse:
    """Back from Stripe: "payment received, crediting..." until the webhook's credit
    lands (htmx polls the status fragment), then the new balance."""
    record = _checkout_or_404(request, checkout_id)
    context = {
        "record": record,
        "amount_display": _dollars(record.amount_cents),
        "balance_display": format_usd(billing.account_for(request.user).balance_micros),
        "pending": record.status == CheckoutSession.Status.OPEN,
    }
    if request.htmx:
        if context["pending"]:
            return render(request, "billing/stripe/success.html#status", context)
        return HttpResponseStopPolling(render_to_string("billing/stripe/success.html#status", context, request))
    return render(request, "billing/stripe/success.html", context)


@require_GET
def checkout_cancel(request: AuthenticatedRequest, checkout_id: int) -> HttpResponse:
    """Back from Stripe without paying: nothing changes (reconciliation expires it later)."""
    record = _checkout_or_404(request, checkout_id)
    return render(request, "billing/stripe/cancel.html", {"record": record})


@csrf_exempt
@login_not_required
@require_POST
def webhook(request: HttpRequest) -> HttpResponseBase:
    """Stripe's webhook: verify, store under the event id, process once.

    Runs outside any request transaction (ATOMIC_REQUESTS is off): the stored event
    commits on its own, so its record survives a processing failure."""
    signature = request.headers.get("Stripe-Signature", "")
    if not signature:
        return HttpResponse("missing Stripe-Signature", status=400, content_type="text/plain")
    if not settings.STRIPE_WEBHOOK_SECRET:
        logger.error("Stripe webhook received but STRIPE_WEBHOOK_SECRET is not set")
        return HttpResponse("webhook secret not configured", status=500, content_type="text/plain")
    try:
        # construct_event's checks (signature over the exact bytes, timestamp within
        # the tolerance), then our own parse: it must be a JSON object.
        payload = request.body.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            payload, signature, settings.STRIPE_WEBHOOK_SECRET, tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
        )
        event = json.loads(payload)
    except ValueError:
        return HttpResponse("malformed payload", status=400, content_type="text/plain")
    except stripe.SignatureVerificationError:
        logger.warning("Stripe webhook with a bad signature refused")
        return HttpResponse("bad signature", status=400, content_type="text/plain")
    if not isinstance(event, dict):
        return HttpResponse("malformed payload", status=400, content_type="text/plain")
    status = webhooks.receive_event(event)
    return HttpResponse("ok" if status == 200 else "error", status=status, content_type="text/plain")
