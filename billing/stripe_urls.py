"""Stripe's pages and webhook, mounted at ``billing/stripe/`` by hubsite/urls.py."""

from django.urls import path

from billing import stripe_views

urlpatterns = [
    path("top-up/", stripe_views.top_up, name="stripe_top_up"),
    path("checkout/<int:checkout_id>/success/", stripe_views.checkout_success, name="stripe_checkout_success"),
    path("checkout/<int:checkout_id>/cancel/", stripe_views.checkout_cancel, name="stripe_checkout_cancel"),
    path("pay-now/<uuid:model_uid>/", stripe_views.pay_now, name="stripe_pay_now"),
    path("webhook/", stripe_views.webhook, name="stripe_webhook"),
]
