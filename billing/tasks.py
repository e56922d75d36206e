"""The billing app's actors, gathered here for django-dramatiq's autodiscovery."""

from billing.stripe_services import reconcile_stripe_checkouts

__all__ = ["reconcile_stripe_checkouts"]
