"""The configured Stripe client: the one place that builds one.

With ``STRIPE_API_BASE`` set (the local emulator, see devtools/stripe_emulator) the
client talks to that server instead of api.stripe.com; everything else is the same
code path. The API version is pinned (``STRIPE_API_VERSION``), so Stripe answers in
the shape this code was written for whatever the account's default version is.
"""

from __future__ import annotations

import stripe
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from stripe._base_address import BaseAddresses


def stripe_client() -> stripe.StripeClient:
    if not settings.STRIPE_SECRET_KEY:
        raise ImproperlyConfigured(
            "STRIPE_SECRET_KEY is not set: set real Stripe keys, or run the site with scripts/run, "
            "which starts the local Stripe emulator."
        )
    base_addresses: BaseAddresses = {}
    if settings.STRIPE_API_BASE:
        base_addresses["api"] = settings.STRIPE_API_BASE
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        stripe_version=settings.STRIPE_API_VERSION,
        base_addresses=base_addresses,
        max_network_retries=2,
    )
