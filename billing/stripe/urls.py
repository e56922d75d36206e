"""Stripe's pages and webhook, mounted at ``billing/stripe/`` by hubsite/urls.py.

The webhook's address is registered at Stripe: its path never changes."""

from django.urls import path

from billing.stripe import views

app_name = "stripe"

urlpatterns = [
    path("top-up/", views.top_up, name="top_up"),
    path("checkout/<int:checkout_id>/success/", views.checkout_success, name="checkout_success"),
    path("checkout/<int:checkout_id>/cancel/", views.checkout_cancel, name="checkout_cancel"),
    path("webhook/", views.webhook, name="webhook"),
]
